//! IMAP COMPRESS=DEFLATE (RFC 4978) as the driver runs it, sans-IO: raw DEFLATE (RFC 1951,
//! no zlib header) in both directions, as Dovecot's `imap_zlib` plugin speaks it.
//!
//! * Output: every write of the driver is compressed and ends with a sync flush
//!   (`Z_SYNC_FLUSH`, RFC 4978 §4: "the server MUST flush ... whenever it sends a response"),
//!   so a continuation request, an IDLE announcement or a tagged reply reaches the client
//!   at once instead of sitting in the compressor's window.
//! * Input: the compressed octets from the socket are inflated at most [`INFLATE_CHUNK`]
//!   octets at a time, and the driver frames each chunk before inflating more: a small
//!   deflate "bomb" can never make the connection hold more than the framer's own line and
//!   literal limits allow, which apply to the inflated octets exactly as to plain ones.
//!
//! Owns the two flate2 streams and the compressed input not inflated yet; the socket and the
//! framer stay with the driver (`super`).

use std::io;

use bytes::{Buf, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Most inflated octets produced per [`Deflate::inflate`] call (the driver frames them
/// before asking for more).
pub const INFLATE_CHUNK: usize = 64 * 1024;

/// Output room given to a sync flush: more than the compressor's own output buffer
/// (miniz_oxide: about 85 KiB), so the flush is never split.
const FLUSH_ROOM: usize = 256 * 1024;

/// Compressed input is read from the socket in pieces of about this size.
const READ_RESERVE: usize = 16 * 1024;

/// Both directions of one connection's DEFLATE layer.
pub struct Deflate {
    out: Compress,
    inp: Decompress,
    /// Compressed octets received and not inflated yet.
    zin: BytesMut,
    /// The last inflate filled its whole chunk: more output may be pending without input.
    more: bool,
    scratch: Box<[u8]>,
}

impl std::fmt::Debug for Deflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflate")
            .field("pending_in", &self.zin.len())
            .finish()
    }
}

fn corrupt(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("deflate: {e}"))
}

impl Deflate {
    /// Starts compression; `already` is input that arrived after the COMPRESS command and
    /// was buffered as plain text (it is compressed data and is inflated first).
    pub fn new(already: &[u8]) -> Deflate {
        let mut zin = BytesMut::with_capacity(READ_RESERVE.max(already.len()));
        zin.extend_from_slice(already);
        Deflate {
            // Dovecot's `imap_zlib_compress_level` default.
            out: Compress::new(Compression::new(6), false),
            inp: Decompress::new(false),
            more: !already.is_empty(),
            zin,
            scratch: vec![0u8; INFLATE_CHUNK].into_boxed_slice(),
        }
    }

    /// Whether [`Deflate::inflate`] may produce output without more input.
    pub fn pending(&self) -> bool {
        self.more
    }

    /// The buffer compressed input from the socket is read into (room reserved); call
    /// [`Deflate::inflate`] after reading.
    pub fn read_buf(&mut self) -> &mut BytesMut {
        self.zin.reserve(READ_RESERVE);
        &mut self.zin
    }

    /// Inflates buffered input into `out`, at most [`INFLATE_CHUNK`] octets; returns how
    /// many. 0 means more compressed input is needed. A corrupt stream, or one the client
    /// ended (RFC 4978 has no way back to plain text), is an error: the connection ends.
    pub fn inflate(&mut self, out: &mut BytesMut) -> io::Result<usize> {
        let (in0, out0) = (self.inp.total_in(), self.inp.total_out());
        let status = self
            .inp
            .decompress(&self.zin, &mut self.scratch, FlushDecompress::None)
            .map_err(corrupt)?;
        let used = (self.inp.total_in() - in0) as usize;
        let made = (self.inp.total_out() - out0) as usize;
        self.zin.advance(used);
        out.extend_from_slice(&self.scratch[..made]);
        self.more = made == self.scratch.len();
        if status == Status::StreamEnd {
            return Err(corrupt("the client ended the compressed stream"));
        }
        Ok(made)
    }

    /// Compresses `data` onto `out` (kept in the compressor's window until [`Deflate::flush`]).
    pub fn deflate(&mut self, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        self.run(data, out, FlushCompress::None)
    }

    /// Ends the current output with a sync flush: everything compressed so far can be
    /// inflated by the client now.
    ///
    /// miniz_oxide skips the flush block when, at the end of a call, earlier output is
    /// still waiting to be copied out (the call then only copies); a loop that stops at the
    /// first call leaving room would end without the flush and hold the tail of a response
    /// back until the next write (found with a 64 KiB FETCH under load). So: room for all
    /// the compressor can hold, and the flush counts only from a call that began with
    /// nothing pending. [`Deflate::deflate`] never leaves output pending (it stops only with
    /// room to spare), so the first call normally is that call.
    pub fn flush(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let mut clean = true;
        for _ in 0..64 {
            out.reserve(FLUSH_ROOM);
            self.out
                .compress_vec(&[], out, FlushCompress::Sync)
                .map_err(corrupt)?;
            let full = out.len() == out.capacity();
            if clean && !full {
                return Ok(());
            }
            clean = !full;
        }
        Err(corrupt("sync flush did not finish"))
    }

    fn run(&mut self, mut data: &[u8], out: &mut Vec<u8>, flush: FlushCompress) -> io::Result<()> {
        // Bounded: each round consumes input or fills the room it was given; a round that
        // leaves room with all input consumed has nothing more to say.
        loop {
            out.reserve(4096 + data.len() / 4);
            let before = self.out.total_in();
            self.out
                .compress_vec(data, out, flush)
                .map_err(corrupt)?;
            data = &data[(self.out.total_in() - before) as usize..];
            if data.is_empty() && out.len() < out.capacity() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's side: raw deflate with a sync flush per message, as imaplib-over-zlib
    /// or NeoMutt send it.
    fn client_deflate(msgs: &[&[u8]]) -> Vec<u8> {
        let mut c = Compress::new(Compression::new(6), false);
        let mut out = Vec::new();
        for m in msgs {
            let mut data = *m;
            loop {
                out.reserve(4096 + data.len());
                let before = c.total_in();
                c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
                data = &data[(c.total_in() - before) as usize..];
                if data.is_empty() && out.len() < out.capacity() {
                    break;
                }
            }
        }
        out
    }

    fn client_inflate(wire: &[u8]) -> Vec<u8> {
        let mut d = Decompress::new(false);
        let mut out = Vec::with_capacity(wire.len() * 20 + 1024);
        d.decompress_vec(wire, &mut out, FlushDecompress::Sync).unwrap();
        out
    }

    /// Feeds `wire` in chunks of `chunk`, inflating after each as the driver does.
    fn inflate_chunked(wire: &[u8], chunk: usize) -> Vec<u8> {
        let mut z = Deflate::new(&[]);
        let mut out = BytesMut::new();
        for c in wire.chunks(chunk) {
            z.read_buf().extend_from_slice(c);
            for _ in 0..1_000_000 {
                let n = z.inflate(&mut out).unwrap();
                assert!(n <= INFLATE_CHUNK);
                if n == 0 || !z.pending() {
                    break;
                }
            }
        }
        out.to_vec()
    }

    #[test]
    fn inflate_is_the_same_at_every_chunk_size() {
        let wire = client_deflate(&[b"a1 LOGIN x y\r\n", b"a2 SELECT INBOX\r\n", &[b'x'; 3000]]);
        let want = [&b"a1 LOGIN x y\r\na2 SELECT INBOX\r\n"[..], &[b'x'; 3000]].concat();
        for chunk in 1..=wire.len() {
            assert_eq!(inflate_chunked(&wire, chunk), want, "chunk {chunk}");
        }
    }

    #[test]
    fn a_bomb_is_inflated_a_bounded_chunk_at_a_time() {
        let zeros = vec![0u8; 8 << 20];
        let wire = client_deflate(&[&zeros]);
        assert!(wire.len() < 64 * 1024, "{}", wire.len());
        let mut z = Deflate::new(&wire);
        let mut out = BytesMut::new();
        let mut total = 0;
        for _ in 0..10_000 {
            out.clear();
            let n = z.inflate(&mut out).unwrap();
            assert!(n <= INFLATE_CHUNK && out.len() == n);
            total += n;
            if !z.pending() {
                break;
            }
        }
        assert_eq!(total, zeros.len());
    }

    #[test]
    fn every_flush_can_be_inflated_at_once() {
        let mut z = Deflate::new(&[]);
        let mut wire = Vec::new();
        let mut got = Vec::new();
        let mut d = Decompress::new(false);
        for line in [&b"+ idling\r\n"[..], b"* 3 EXISTS\r\n", &[b'y'; 100_000]] {
            z.deflate(line, &mut wire).unwrap();
            z.flush(&mut wire).unwrap();
            // Everything up to the flush inflates completely without more input.
            let mut out = Vec::with_capacity(200_000);
            d.decompress_vec(&wire, &mut out, FlushDecompress::Sync).unwrap();
            assert_eq!(out, line);
            got.extend_from_slice(&out);
            wire.clear();
        }
        assert_eq!(client_inflate(&[]), b"");
        assert_eq!(got.len(), 100_000 + 22);
    }

    #[test]
    fn garbage_and_a_finished_stream_are_errors() {
        let mut z = Deflate::new(&[0xff; 64]);
        assert!(z.inflate(&mut BytesMut::new()).is_err());
        let mut c = Compress::new(Compression::new(6), false);
        let mut fin = Vec::with_capacity(1024);
        c.compress_vec(b"x", &mut fin, FlushCompress::Finish).unwrap();
        let mut z = Deflate::new(&fin);
        assert!(z.inflate(&mut BytesMut::new()).is_err());
    }
}

#[cfg(test)]
mod stress {
    use super::*;

    /// Incompressible pieces of many sizes, each write flushed: everything written up to a
    /// flush inflates completely from the octets sent so far.
    #[test]
    fn every_flush_delivers_everything_of_any_size() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut z = Deflate::new(&[]);
        let mut d = Decompress::new(false);
        for round in 0..200 {
            let len = (rand() % 300_000) as usize;
            let data: Vec<u8> = (0..len).map(|_| (rand() % 256) as u8).collect();
            let mut wire = Vec::new();
            for piece in data.chunks(1 + (rand() % 70_000) as usize) {
                z.deflate(piece, &mut wire).unwrap();
            }
            z.flush(&mut wire).unwrap();
            let mut out = Vec::with_capacity(len + 1024);
            let mut input = &wire[..];
            for _ in 0..100_000 {
                let before = d.total_in();
                d.decompress_vec(input, &mut out, FlushDecompress::Sync).unwrap();
                input = &input[(d.total_in() - before) as usize..];
                if input.is_empty() {
                    break;
                }
                out.reserve(64 * 1024);
            }
            assert_eq!(out.len(), data.len(), "round {round}");
            assert!(out == data, "round {round}");
        }
    }
}

#[cfg(test)]
mod writes {
    use super::*;

    /// The driver's write pattern (`write_deflated`): a 4 KiB buffer, compressed output
    /// handed on (and the buffer cleared) whenever it passes 64 KiB, a sync flush at the end
    /// of every write. Text responses of many sizes: after each flush the client can
    /// inflate every octet of the response. (The held-back tail `flush` guards against
    /// showed only under the live server's exact history; this pins the write pattern.)
    #[test]
    fn each_write_arrives_whole() {
        let mut z = Deflate::new(&[]);
        let mut d = Decompress::new(false);
        let mut seed = 7u64;
        for round in 0..300 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let lines = 10 + (seed >> 40) as usize % 3000;
            let resp: Vec<u8> = (0..lines)
                .flat_map(|i| format!("{round} line {i} text {}\r\n", seed.rotate_left(i as u32) % 977).into_bytes())
                .collect();
            let mut wire = Vec::with_capacity(4096);
            let mut sent = Vec::new();
            for slice in resp.chunks(65536) {
                z.deflate(slice, &mut wire).unwrap();
                if wire.len() >= 65536 {
                    sent.append(&mut wire);
                }
            }
            z.flush(&mut wire).unwrap();
            sent.append(&mut wire);
            let mut out = Vec::with_capacity(resp.len() + 1024);
            let mut input = &sent[..];
            for _ in 0..100_000 {
                let before = d.total_in();
                d.decompress_vec(input, &mut out, FlushDecompress::Sync).unwrap();
                input = &input[(d.total_in() - before) as usize..];
                if input.is_empty() {
                    break;
                }
                out.reserve(64 * 1024);
            }
            assert_eq!(out.len(), resp.len(), "round {round}");
        }
    }
}
