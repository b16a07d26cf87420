//! The admin socket: a Unix stream socket, mode 0600, owned by the daemon's user, and the
//! CLI's client for it.
//!
//! * Binding ([`bind`]): a socket file left by an earlier run is removed only if nothing
//!   answers on it (a second daemon on the same path is refused); anything else at the path
//!   is refused. The socket is bound under a temporary name, chmod'ed 0600 and renamed into
//!   place, so it is never reachable with wider permissions (the crate forbids `unsafe`, so
//!   there is no `umask(2)` around the bind). [`Bound`]'s drop removes the file at exit.
//! * Peer credentials (`SO_PEERCRED`) are checked as a second line of defence: the peer's
//!   uid must be the daemon's (the socket file's owner) or root; anyone else gets one
//!   `forbidden` reply and the connection closes.
//! * Each connection may send requests one per line; each gets one reply line. A request is
//!   at most [`MAX_REQUEST`] octets; a connection idle for [`IDLE`] is closed.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::proto::{ErrorCode, Frame, Reader, Request, Response, MAX_REQUEST};

/// How long a connection may stay without a request.
const IDLE: Duration = Duration::from_secs(60);

/// The bound socket; dropping it removes the file (if it is still ours).
pub struct Bound {
    pub path: PathBuf,
    pub listener: UnixListener,
    /// The daemon's uid (the socket file's owner).
    uid: u32,
    ino: u64,
}

impl Drop for Bound {
    fn drop(&mut self) {
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Binds the admin socket at `path` (see the module docs).
pub fn bind(path: &Path) -> anyhow::Result<Bound> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            anyhow::bail!("admin socket {}: exists and is not a socket", path.display());
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "admin socket {}: another daemon answers on it",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .map_err(|e| anyhow::anyhow!("cannot remove stale {}: {e}", path.display()))?;
    }
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(
        "{}.tmp.{}",
        name.unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", tmp.display()))?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        anyhow::bail!("cannot place the admin socket at {}: {e}", path.display());
    }
    let meta = std::fs::symlink_metadata(path)?;
    tracing::info!("admin socket on {}", path.display());
    Ok(Bound {
        path: path.to_path_buf(),
        listener,
        uid: meta.uid(),
        ino: meta.ino(),
    })
}

/// What answers a request (`admin::handle` over the daemon's context); blocking, so it is
/// run on the blocking pool.
pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// Serves admin connections until `shutdown` fires; the socket file is removed then.
pub async fn serve(bound: Bound, handler: Handler, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = bound.listener.accept() => r,
        };
        match accepted {
            Ok((stream, _)) => {
                let (handler, uid) = (handler.clone(), bound.uid);
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, handler, uid).await {
                        tracing::debug!("admin connection: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("admin socket accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(bound);
}

async fn connection(mut stream: UnixStream, handler: Handler, uid: u32) -> std::io::Result<()> {
    let peer = stream.peer_cred()?;
    if peer.uid() != uid && peer.uid() != 0 {
        tracing::warn!(
            "admin socket: refused a connection from uid {} (pid {:?})",
            peer.uid(),
            peer.pid()
        );
        let resp = Response::err(ErrorCode::Forbidden, "permission denied");
        return send(&mut stream, &resp).await;
    }
    let mut reader = Reader::default();
    let mut buf = vec![0u8; 4096];
    loop {
        while let Some(frame) = reader.next_frame() {
            let resp = match frame {
                Frame::Request(req) => {
                    let handler = handler.clone();
                    tokio::task::spawn_blocking(move || handler(&req))
                        .await
                        .unwrap_or_else(|e| Response::err(ErrorCode::Failed, e.to_string()))
                }
                Frame::Bad(why) => Response::err(ErrorCode::Usage, why),
                Frame::TooLong => Response::err(
                    ErrorCode::Usage,
                    format!("request longer than {MAX_REQUEST} octets"),
                ),
            };
            send(&mut stream, &resp).await?;
        }
        let n = match tokio::time::timeout(IDLE, stream.read(&mut buf)).await {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        };
        if n == 0 {
            return Ok(());
        }
        reader.push(&buf[..n]);
    }
}

async fn send(stream: &mut UnixStream, resp: &Response) -> std::io::Result<()> {
    let mut line = resp.to_line();
    line.push(b'\n');
    tokio::time::timeout(IDLE, stream.write_all(&line))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out"))?
}

/// Why the client got no answer.
#[derive(Debug)]
pub enum ClientError {
    /// No daemon listens there (no socket file, or nobody accepts on it).
    NotRunning(String),
    /// Anything else (permission denied, a broken reply).
    Other(String),
}

/// How long the client waits for the daemon's answer (a force-resync of a big tree is slow).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(300);

/// Sends one request to the daemon at `path` and reads its reply (blocking).
pub fn request(path: &Path, req: &Request) -> Result<Response, ClientError> {
    use std::io::ErrorKind::{ConnectionRefused, NotFound};
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(|e| match e.kind() {
        NotFound | ConnectionRefused => ClientError::NotRunning(e.to_string()),
        _ => ClientError::Other(e.to_string()),
    })?;
    let other = |e: std::io::Error| ClientError::Other(e.to_string());
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).map_err(other)?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT)).map_err(other)?;
    let mut line = serde_json::to_vec(req).map_err(|e| ClientError::Other(e.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(other)?;
    let mut reply = Vec::new();
    // One line, at most 64 MiB (a `who` of many sessions is long, but not unbounded).
    BufReader::new(&stream)
        .take(64 << 20)
        .read_until(b'\n', &mut reply)
        .map_err(other)?;
    if reply.is_empty() {
        return Err(ClientError::Other("the daemon closed the connection".into()));
    }
    serde_json::from_slice(&reply).map_err(|e| ClientError::Other(format!("bad reply: {e}")))
}
