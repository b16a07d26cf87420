//! The client side of IMAP COMPRESS=DEFLATE (RFC 4978) for `--compress`, and wire-octet
//! counting for every connection: [`Zio`] is raw DEFLATE over any stream (a sync flush
//! after every write, as Thunderbird and isync send), [`Counted`] counts the octets that
//! cross the socket so a report can give bytes on the wire next to the protocol bytes.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::client::Io;

/// Octets read from and written to the sockets of one run, all connections together.
#[derive(Default)]
pub struct Wire {
    pub read: AtomicU64,
    pub written: AtomicU64,
}

/// A socket whose traffic is added to a [`Wire`].
pub struct Counted<T> {
    pub inner: T,
    pub wire: Arc<Wire>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let n = (buf.filled().len() - before) as u64;
        self.wire.read.fetch_add(n, Relaxed);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        self.wire.written.fetch_add(n as u64, Relaxed);
        Poll::Ready(Ok(n))
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Raw DEFLATE both ways over `inner`.
pub struct Zio {
    inner: Box<dyn Io>,
    c: Compress,
    d: Decompress,
    /// Compressed input not inflated yet.
    raw: Vec<u8>,
    raw_pos: usize,
    /// Compressed output not written yet.
    out: Vec<u8>,
    out_pos: usize,
}

impl Zio {
    pub fn new(inner: Box<dyn Io>) -> Zio {
        Zio {
            inner,
            c: Compress::new(Compression::new(6), false),
            d: Decompress::new(false),
            raw: Vec::with_capacity(64 * 1024),
            raw_pos: 0,
            out: Vec::new(),
            out_pos: 0,
        }
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_pos < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.out_pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_pos += n;
        }
        self.out.clear();
        self.out_pos = 0;
        Poll::Ready(Ok(()))
    }
}

fn zerr(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("deflate: {e}"))
}

impl AsyncRead for Zio {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        // Bounded: each round inflates buffered input or reads more; EOF ends it.
        loop {
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let dst = buf.initialize_unfilled();
            let (i0, o0) = (me.d.total_in(), me.d.total_out());
            me.d.decompress(&me.raw[me.raw_pos..], dst, FlushDecompress::Sync)
                .map_err(zerr)?;
            me.raw_pos += (me.d.total_in() - i0) as usize;
            let made = (me.d.total_out() - o0) as usize;
            if made > 0 {
                buf.advance(made);
                return Poll::Ready(Ok(()));
            }
            // Need more compressed input.
            me.raw.drain(..me.raw_pos);
            me.raw_pos = 0;
            let mut tmp = [0u8; 16 * 1024];
            let mut rb = ReadBuf::new(&mut tmp);
            ready!(Pin::new(&mut me.inner).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                return Poll::Ready(Ok(()));
            }
            me.raw.extend_from_slice(rb.filled());
        }
    }
}

impl AsyncWrite for Zio {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        ready!(me.poll_drain(cx))?;
        let mut rest = data;
        for _ in 0..1_000_000 {
            me.out.reserve(4096 + rest.len());
            let before = me.c.total_in();
            me.c.compress_vec(rest, &mut me.out, FlushCompress::Sync)
                .map_err(zerr)?;
            rest = &rest[(me.c.total_in() - before) as usize..];
            if rest.is_empty() && me.out.len() < me.out.capacity() {
                break;
            }
        }
        // The data is taken; it goes out on the next write or flush.
        let _ = me.poll_drain(cx)?;
        Poll::Ready(Ok(data.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        ready!(me.poll_drain(cx))?;
        Pin::new(&mut me.inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        ready!(me.poll_drain(cx))?;
        Pin::new(&mut me.inner).poll_shutdown(cx)
    }
}
