//! LF ↔ CRLF conversion of message bodies. Messages are stored as Dovecot stores them, with
//! bare LF line endings ([`ToDisk`] on save, a piece at a time), and handed to clients with CRLF
//! ([`to_crlf`], memchr-based); the CRLF size (RFC822.SIZE, the `,W=` of a file name) is the
//! stored size plus one per bare LF ([`compute_vsize`] for files without `,W=`).
//!
//! Mirrors Dovecot's `src/lib/istream-crlf.c` (`i_stream_create_lf` when saving,
//! `i_stream_create_crlf` when reading) and the virtual size of `maildir-mail.c`.

use super::fsutil::IoCtx;
use crate::store::Result;
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Stores `data` as Dovecot does (CRLF → LF); returns (stored bytes, vsize). The whole-message
/// definition that [`ToDisk`] (what saving uses) is tested against.
#[cfg(test)]
pub(super) fn to_disk_form(data: &[u8]) -> (Vec<u8>, u64) {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'\r' && data.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(data[i]);
        i += 1;
    }
    let vsize = out.len() as u64 + bare_lf_count(0, &out);
    (out, vsize)
}

/// `to_disk_form` (above, the tests' reference) a piece at a time, for a message that
/// arrives in pieces (a large IMAP APPEND streamed to `tmp/`): the pieces' outputs,
/// concatenated, are `to_disk_form` of the pieces concatenated, and [`ToDisk::sizes`] its
/// two sizes. A CR at the end of a piece is
/// held back until the next piece (or [`ToDisk::finish`]) shows whether an LF follows it.
#[derive(Debug, Default)]
pub(super) struct ToDisk {
    /// The last piece ended with a CR that has not been written.
    held_cr: bool,
    /// The last byte written (for counting bare LFs across pieces); 0 at the start.
    prev: u8,
    /// Octets written so far (the file's size, `,S=`).
    size: u64,
    /// Bare LFs written so far (each is one more octet in the CRLF size, `,W=`).
    bare_lfs: u64,
}

impl ToDisk {
    /// Converts the next piece, appending its stored form to `out`.
    pub(super) fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if data.is_empty() {
            return;
        }
        let start = out.len();
        let mut rest = data;
        if self.held_cr {
            self.held_cr = false;
            if rest.first() != Some(&b'\n') {
                out.push(b'\r');
            }
        }
        if rest.last() == Some(&b'\r') {
            self.held_cr = true;
            rest = &rest[..rest.len() - 1];
        }
        let mut from = 0;
        for cr in memchr::memchr_iter(b'\r', rest) {
            if rest.get(cr + 1) == Some(&b'\n') {
                out.extend_from_slice(&rest[from..cr]);
                from = cr + 1;
            }
        }
        out.extend_from_slice(&rest[from..]);
        self.count(start, out);
    }

    /// The end of the message: writes a CR still held back.
    pub(super) fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.held_cr) {
            let start = out.len();
            out.push(b'\r');
            self.count(start, out);
        }
    }

    /// (stored size, CRLF size) of what was written so far.
    pub(super) fn sizes(&self) -> (u64, u64) {
        (self.size, self.size + self.bare_lfs)
    }

    fn count(&mut self, start: usize, out: &[u8]) {
        let new = &out[start..];
        if let Some(&last) = new.last() {
            self.bare_lfs += bare_lf_count(self.prev, new);
            self.prev = last;
            self.size += new.len() as u64;
        }
    }
}

/// LFs not preceded by CR: each becomes CRLF when read. `prev` is the byte before `data`
/// (0 at the start of a message), so a file can be counted a chunk at a time.
fn bare_lf_count(mut prev: u8, data: &[u8]) -> u64 {
    let mut n = 0;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            n += 1;
        }
        prev = b;
    }
    n
}

/// The message with CRLF line endings.
pub(super) fn to_crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32 + 2);
    to_crlf_into(data, &mut out);
    out
}

/// [`to_crlf`] into `out` (cleared first), so that a loop can reuse one buffer.
pub(super) fn to_crlf_into(data: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut start = 0;
    for lf in memchr::memchr_iter(b'\n', data) {
        if lf == 0 || data[lf - 1] != b'\r' {
            out.extend_from_slice(&data[start..lf]);
            out.extend_from_slice(b"\r\n");
            start = lf + 1;
        }
    }
    out.extend_from_slice(&data[start..]);
}

/// Reads a file once to learn its CRLF size (for files without `,W=`).
pub(super) fn compute_vsize(path: &Path) -> Result<u64> {
    let mut f = super::fsutil::retry_estale(|| File::open(path)).ctx("open", path)?;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut len, mut lfs) = (0u64, 0u64);
    let mut prev = 0u8;
    loop {
        let n = f.read(&mut buf).ctx("read", path)?;
        if n == 0 {
            break;
        }
        lfs += bare_lf_count(prev, &buf[..n]);
        prev = buf[n - 1];
        len += n as u64;
    }
    Ok(len + lfs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn crlf_forms_agree() {
        for input in [
            &b"a\r\nb\r\n\r\nbody\r\n"[..],
            b"bare\nlf\n",
            b"mixed\r\nand\nend",
            b"",
            b"\r\r\n\n",
        ] {
            let (disk, vsize) = to_disk_form(input);
            assert!(!disk.windows(2).any(|w| w == b"\r\n") || input.ends_with(b"\r\r\n\n"));
            assert_eq!(to_crlf(&disk).len() as u64, vsize, "{input:?}");
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("m");
            fs::write(&p, &disk).unwrap();
            assert_eq!(compute_vsize(&p).unwrap(), vsize);
        }
        assert_eq!(to_crlf(b"a\nb\r\n"), b"a\r\nb\r\n");
    }

    /// Every string of length <= `max` over {a, CR, LF}.
    fn all_strings(max: u32) -> Vec<Vec<u8>> {
        let alphabet = [b'a', b'\r', b'\n'];
        let mut all = Vec::new();
        for len in 0..=max {
            for mut n in 0..3usize.pow(len) {
                let mut v = Vec::new();
                for _ in 0..len {
                    v.push(alphabet[n % 3]);
                    n /= 3;
                }
                all.push(v);
            }
        }
        all
    }

    /// [`ToDisk`] over `pieces`: the stored bytes and the sizes it reports.
    fn to_disk_in_pieces(pieces: &[&[u8]]) -> (Vec<u8>, (u64, u64)) {
        let mut conv = ToDisk::default();
        let mut out = Vec::new();
        for p in pieces {
            conv.push(p, &mut out);
        }
        conv.finish(&mut out);
        (out, conv.sizes())
    }

    #[test]
    fn to_disk_in_pieces_equals_to_disk_form_at_every_split() {
        // Every short string over {a, CR, LF} (bare CR, bare LF, CR at a piece end, `\r\r\n`),
        // cut at every position and every pair of positions (empty pieces included).
        for v in all_strings(7) {
            let (want, vsize) = to_disk_form(&v);
            let want_sizes = (want.len() as u64, vsize);
            for i in 0..=v.len() {
                assert_eq!(
                    to_disk_in_pieces(&[&v[..i], &v[i..]]),
                    (want.clone(), want_sizes),
                    "{v:?} cut at {i}"
                );
                for j in i..=v.len() {
                    let got = to_disk_in_pieces(&[&v[..i], &v[i..j], &v[j..]]);
                    assert_eq!(got, (want.clone(), want_sizes), "{v:?} cut at {i}, {j}");
                }
            }
        }
    }

    #[test]
    fn to_disk_in_pieces_at_every_piece_size() {
        let mut msg = b"Subject: x\r\n\r\nbare\nlf\rcr\r\r\nend\r\n".repeat(7);
        msg.extend_from_slice(b"\r");
        let (want, vsize) = to_disk_form(&msg);
        for size in 1..=msg.len() {
            let pieces: Vec<&[u8]> = msg.chunks(size).collect();
            assert_eq!(
                to_disk_in_pieces(&pieces),
                (want.clone(), (want.len() as u64, vsize)),
                "piece size {size}"
            );
        }
    }

    #[test]
    fn compute_vsize_carries_the_previous_byte_across_reads() {
        // The read buffer is 64 KiB: put a CRLF and a bare LF across its boundary.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m");
        let mut crlf = vec![b'a'; 64 * 1024 - 1];
        crlf.extend_from_slice(b"\r\n");
        fs::write(&p, &crlf).unwrap();
        assert_eq!(compute_vsize(&p).unwrap(), crlf.len() as u64);
        let mut lf = vec![b'a'; 64 * 1024];
        lf.push(b'\n');
        fs::write(&p, &lf).unwrap();
        assert_eq!(compute_vsize(&p).unwrap(), lf.len() as u64 + 1);
    }

    #[test]
    fn to_crlf_agrees_with_the_byte_by_byte_definition() {
        fn reference(data: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            let mut prev = 0u8;
            for &b in data {
                if b == b'\n' && prev != b'\r' {
                    out.push(b'\r');
                }
                out.push(b);
                prev = b;
            }
            out
        }
        // Every string of length <= 6 over {a, CR, LF}.
        let alphabet = [b'a', b'\r', b'\n'];
        for len in 0..=6u32 {
            for mut n in 0..3usize.pow(len) {
                let mut v = Vec::new();
                for _ in 0..len {
                    v.push(alphabet[n % 3]);
                    n /= 3;
                }
                assert_eq!(to_crlf(&v), reference(&v), "{v:?}");
            }
        }
    }
}
