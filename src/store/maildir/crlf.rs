//! LF ↔ CRLF conversion of message bodies. Messages are stored as Dovecot stores them, with
//! bare LF line endings ([`to_disk_form`] on save), and handed to clients with CRLF
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

/// Stores `data` as Dovecot does (CRLF → LF); returns (stored bytes, vsize).
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
    let mut start = 0;
    for lf in memchr::memchr_iter(b'\n', data) {
        if lf == 0 || data[lf - 1] != b'\r' {
            out.extend_from_slice(&data[start..lf]);
            out.extend_from_slice(b"\r\n");
            start = lf + 1;
        }
    }
    out.extend_from_slice(&data[start..]);
    out
}

/// Reads a file once to learn its CRLF size (for files without `,W=`).
pub(super) fn compute_vsize(path: &Path) -> Result<u64> {
    let mut f = File::open(path).ctx("open", path)?;
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
