//! The login proxy's relay (README.md, "Cluster"): after a proxied login the front copies
//! octets both ways between the client (plain or TLS: TLS ends here) and the owner's
//! internal listener, understanding none of them (so COMPRESS=DEFLATE, IDLE and literals
//! pass through unchanged), until either side closes.
//!
//! Bounded: one buffer of [`BUF`] octets per direction; a write waits until the other side
//! takes the octets (backpressure), bounded by the idle timeout like every write; no input
//! from either side for the service's idle timeout ends it; shutdown and `kick` end it.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Octets read at once from either side.
const BUF: usize = 64 * 1024;

/// Why a relay ended (the `*` record).
pub(super) fn relay_end_text(e: &End) -> &'static str {
    match e {
        End::Client => "client closed the connection",
        End::Backend => "the owner closed the connection",
        End::Idle => "idle timeout",
        End::Stop => "shutdown or kick",
        End::Error => "connection error",
    }
}

pub(super) enum End {
    Client,
    Backend,
    Idle,
    Stop,
    Error,
}

/// Relays until either side closes: first `to_backend` (what the client pipelined after its
/// login command) and `to_client` (what the owner sent after its login reply). Counts the
/// client-side octets in `counts` (in, out).
#[allow(clippy::too_many_arguments)]
pub(super) async fn relay<C: AsyncRead + AsyncWrite + Unpin>(
    client: &mut C,
    counts: &mut (u64, u64),
    backend: &mut TcpStream,
    to_backend: &[u8],
    to_client: &[u8],
    idle: Duration,
    stops: [&CancellationToken; 2],
) -> End {
    let step = async {
        if !to_backend.is_empty() {
            backend.write_all(to_backend).await?;
        }
        if !to_client.is_empty() {
            client.write_all(to_client).await?;
            client.flush().await?;
            counts.1 += to_client.len() as u64;
        }
        Ok::<(), std::io::Error>(())
    };
    match tokio::time::timeout(idle, step).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return End::Error,
        Err(_) => return End::Idle,
    }
    let mut from_client = vec![0u8; BUF];
    let mut from_backend = vec![0u8; BUF];
    loop {
        // Both reads are cancel-safe: the one that loses the race has read nothing.
        let read = async {
            tokio::select! {
                r = client.read(&mut from_client) => (true, r),
                r = backend.read(&mut from_backend) => (false, r),
            }
        };
        let (client_side, r) = tokio::select! {
            biased;
            _ = stops[0].cancelled() => return End::Stop,
            _ = stops[1].cancelled() => return End::Stop,
            r = tokio::time::timeout(idle, read) => match r {
                Ok(x) => x,
                Err(_) => return End::Idle,
            },
        };
        let n = match r {
            Ok(0) if client_side => return End::Client,
            Ok(0) => return End::Backend,
            Ok(n) => n,
            Err(_) => return End::Error,
        };
        let written = if client_side {
            counts.0 += n as u64;
            tokio::time::timeout(idle, backend.write_all(&from_client[..n])).await
        } else {
            let w = tokio::time::timeout(idle, async {
                client.write_all(&from_backend[..n]).await?;
                client.flush().await
            })
            .await;
            if matches!(w, Ok(Ok(()))) {
                counts.1 += n as u64;
            }
            w
        };
        match written {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return End::Error,
            Err(_) => return End::Idle,
        }
    }
}
