//! Sans-IO line framing under a hard limit (ARCHITECTURE.md, "Connection driver"): bytes
//! in, [`Frame`]s out, the same at every chunk size; literal data (IMAP) is taken by exact
//! octet count and never scanned for lines. The one framer of the crate: both protocols'
//! sessions get their lines and literals through it.

use bytes::{Buf, BytesMut};

/// One unit of framed input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete line without its line ending (CRLF, or a bare LF).
    Line(Vec<u8>),
    /// A line over the limit; its bytes were (or will be, up to the LF) discarded.
    TooLong,
}

/// Sans-IO line/literal framing under a hard limit.
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    /// Maximum line length including the line ending.
    limit: usize,
    /// Dropping the rest of an over-long line (already reported) up to its LF.
    discarding: bool,
    /// The last [`TAIL_KEEP`] octets of the line being discarded (an IMAP line may end with
    /// a literal announcement whose data follows).
    tail: Vec<u8>,
    /// The tail of a discarded line that has ended, until taken.
    ended_tail: Option<Vec<u8>>,
}

/// Octets kept of the end of a discarded line (CR included): enough for `{` + 20 digits +
/// `+}` + CR.
const TAIL_KEEP: usize = 32;

impl Framer {
    pub fn new(limit: usize) -> Framer {
        Framer {
            buf: BytesMut::with_capacity(4096),
            limit: limit.max(2),
            discarding: false,
            tail: Vec::new(),
            ended_tail: None,
        }
    }

    /// Changes the line limit for the lines still to be framed.
    pub fn set_limit(&mut self, limit: usize) -> &mut Framer {
        self.limit = limit.max(2);
        self
    }

    /// Appends received bytes (the unit tests and the fuzz targets; the driver reads into
    /// [`Framer::read_buf`]).
    #[cfg(any(test, feature = "test-support"))]
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        self.filled();
    }

    /// The buffer to read into (room reserved); call [`Framer::filled`] afterwards.
    pub(super) fn read_buf(&mut self) -> &mut BytesMut {
        self.buf.reserve(4096);
        &mut self.buf
    }

    /// Applies discarding to freshly received bytes, so an endless line never grows the buffer.
    pub(super) fn filled(&mut self) {
        if self.discarding {
            self.drop_discarded();
        }
    }

    fn drop_discarded(&mut self) {
        let end = self.buf.iter().position(|&b| b == b'\n');
        let dropped = end.unwrap_or(self.buf.len());
        self.tail
            .extend_from_slice(&self.buf[dropped.saturating_sub(TAIL_KEEP)..dropped]);
        if self.tail.len() > TAIL_KEEP {
            self.tail.drain(..self.tail.len() - TAIL_KEEP);
        }
        match end {
            Some(i) => {
                self.buf.advance(i + 1);
                self.discarding = false;
                let mut tail = std::mem::take(&mut self.tail);
                if tail.last() == Some(&b'\r') {
                    tail.pop();
                }
                self.ended_tail = Some(tail);
            }
            None => self.buf.clear(),
        }
    }

    /// Once per over-long line, after its LF was seen: its last octets (without CR/LF), so
    /// a session can tell whether it announced literal data that follows it. Call before
    /// [`Framer::next_line`]; `None` while the line has not ended or was already reported.
    pub fn take_discarded_tail(&mut self) -> Option<Vec<u8>> {
        if self.discarding {
            self.drop_discarded();
        }
        self.ended_tail.take()
    }

    /// The next complete line, an over-long-line marker, or `None` for "need more input".
    pub fn next_line(&mut self) -> Option<Frame> {
        if self.discarding {
            self.drop_discarded();
            if self.discarding {
                return None;
            }
        }
        let scan = self.buf.len().min(self.limit);
        match self.buf[..scan].iter().position(|&b| b == b'\n') {
            Some(i) => {
                let mut line = self.buf.split_to(i + 1);
                line.truncate(i);
                if line.last() == Some(&b'\r') {
                    line.truncate(i - 1);
                }
                Some(Frame::Line(line.to_vec()))
            }
            None if self.buf.len() >= self.limit => {
                self.discarding = true;
                self.drop_discarded();
                Some(Frame::TooLong)
            }
            None => None,
        }
    }

    /// Exactly `n` literal octets, if buffered.
    pub fn take_literal(&mut self, n: usize) -> Option<Vec<u8>> {
        if self.buf.len() >= n {
            Some(self.buf.split_to(n).to_vec())
        } else {
            // Reserve in steps: the announced size is only a promise.
            self.buf.reserve((n - self.buf.len()).min(64 * 1024));
            None
        }
    }

    /// Drops everything buffered (before a TLS handshake).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.discarding = false;
        self.tail.clear();
        self.ended_tail = None;
    }

    /// Takes everything buffered and not yet framed (input that arrived after IMAP
    /// COMPRESS: it is compressed data, handed to the inflater).
    pub fn take_rest(&mut self) -> BytesMut {
        self.discarding = false;
        self.tail.clear();
        self.ended_tail = None;
        self.buf.split()
    }

    /// Octets buffered and not yet framed.
    #[cfg(any(test, feature = "test-support"))]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_at_chunk(input: &[u8], limit: usize, chunk: usize) -> Vec<Frame> {
        let mut f = Framer::new(limit);
        let mut got = Vec::new();
        for c in input.chunks(chunk) {
            f.push(c);
            while let Some(fr) = f.next_line() {
                got.push(fr);
            }
        }
        got
    }

    fn line(s: &str) -> Frame {
        Frame::Line(s.as_bytes().to_vec())
    }

    /// Every chunk size from 1 to the whole input gives the same frames.
    fn check_all_chunks(input: &[u8], limit: usize, want: &[Frame]) {
        for chunk in 1..=input.len() {
            assert_eq!(
                frames_at_chunk(input, limit, chunk),
                want,
                "chunk size {chunk}"
            );
        }
    }

    #[test]
    fn lines_crlf_and_bare_lf_at_every_chunk_size() {
        let input = b"USER bob\r\nPASS x y\nNOOP\r\n\r\nQUIT\r\nincomplete";
        check_all_chunks(
            input,
            255,
            &[
                line("USER bob"),
                line("PASS x y"),
                line("NOOP"),
                line(""),
                line("QUIT"),
            ],
        );
    }

    #[test]
    fn limit_counts_the_crlf() {
        // 253 octets + CRLF = 255: accepted; 254 + CRLF = 256: too long.
        let ok = "a".repeat(253);
        let bad = "b".repeat(254);
        let input = format!("{ok}\r\n{bad}\r\nNOOP\r\n");
        check_all_chunks(
            input.as_bytes(),
            255,
            &[line(&ok), Frame::TooLong, line("NOOP")],
        );
    }

    #[test]
    fn over_long_line_reported_once_and_discarded_to_lf() {
        let long = "X".repeat(1000);
        let input = format!("NOOP\r\n{long}\r\nSTAT\r\n{long}\nQUIT\r\n");
        check_all_chunks(
            input.as_bytes(),
            255,
            &[
                line("NOOP"),
                Frame::TooLong,
                line("STAT"),
                Frame::TooLong,
                line("QUIT"),
            ],
        );
    }

    #[test]
    fn endless_line_does_not_grow_the_buffer() {
        let mut f = Framer::new(255);
        let junk = vec![b'z'; 1000];
        let mut too_long = 0;
        for _ in 0..100 {
            f.push(&junk);
            while let Some(fr) = f.next_line() {
                assert_eq!(fr, Frame::TooLong);
                too_long += 1;
            }
            assert!(f.buffered() < 255);
        }
        assert_eq!(too_long, 1);
        f.push(b"\r\nNOOP\r\n");
        assert_eq!(f.next_line(), Some(line("NOOP")));
    }

    #[test]
    fn binary_junk_is_framed_not_interpreted() {
        let input = b"\x00\xff\x80\r\n\x1b[31m\n";
        check_all_chunks(
            input,
            255,
            &[Frame::Line(b"\x00\xff\x80".to_vec()), line("\x1b[31m")],
        );
    }

    #[test]
    fn literal_then_line() {
        let input = b"A1 APPEND x {5}\r\nhel\nlA2 NOOP\r\n";
        for chunk in 1..=input.len() {
            let mut f = Framer::new(255);
            let mut got = Vec::new();
            let mut want_lit = false;
            for c in input.chunks(chunk) {
                f.push(c);
                loop {
                    if want_lit {
                        match f.take_literal(5) {
                            Some(d) => {
                                got.push(Frame::Line(d));
                                want_lit = false;
                            }
                            None => break,
                        }
                    } else {
                        match f.next_line() {
                            Some(fr) => {
                                want_lit = fr == line("A1 APPEND x {5}");
                                got.push(fr);
                            }
                            None => break,
                        }
                    }
                }
            }
            assert_eq!(
                got,
                vec![line("A1 APPEND x {5}"), line("hel\nl"), line("A2 NOOP")],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn limit_can_change_between_lines() {
        let input = format!("{}\r\n{}\r\nok\r\n", "a".repeat(20), "b".repeat(20));
        for chunk in 1..=input.len() {
            let mut f = Framer::new(10);
            let mut got = Vec::new();
            for c in input.as_bytes().chunks(chunk) {
                f.push(c);
                loop {
                    // Strict for the first line, generous afterwards (as after `AUTH PLAIN`).
                    let limit = if got.is_empty() { 10 } else { 100 };
                    match f.set_limit(limit).next_line() {
                        Some(fr) => got.push(fr),
                        None => break,
                    }
                }
            }
            assert_eq!(
                got,
                vec![Frame::TooLong, line(&"b".repeat(20)), line("ok")],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn discarded_line_tail_is_reported_once_at_every_chunk_size() {
        let long = format!("a1 APPEND x {} {{12+}}", "y".repeat(300));
        let input = format!("{long}\r\nNOOP\r\n");
        for chunk in 1..=input.len() {
            let mut f = Framer::new(100);
            let mut got = Vec::new();
            for c in input.as_bytes().chunks(chunk) {
                f.push(c);
                loop {
                    if let Some(t) = f.take_discarded_tail() {
                        got.push(Frame::Line(t));
                        continue;
                    }
                    match f.next_line() {
                        Some(fr) => got.push(fr),
                        None => break,
                    }
                }
            }
            // The last TAIL_KEEP octets before the LF, less the CR.
            let tail = long[long.len() - (TAIL_KEEP - 1)..].to_string();
            assert_eq!(
                got,
                vec![Frame::TooLong, line(&tail), line("NOOP")],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn clear_drops_buffered_plaintext() {
        let mut f = Framer::new(255);
        f.push(b"STLS\r\nUSER injected\r\n");
        assert_eq!(f.next_line(), Some(line("STLS")));
        f.clear();
        assert_eq!(f.next_line(), None);
    }
}
