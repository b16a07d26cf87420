//! Dovecot-compatible dot-locks (`<file>.lock`), as `lib/file-dotlock.c` makes them and
//! `maildir-uidlist.c` configures them for `dovecot-uidlist`: the lock is created with
//! `O_EXCL` and holds `<pid>:<hostname>`; it is stale when its process is gone (same host) or
//! when it has not changed for `stale_timeout` (Dovecot: `MAILDIR_UIDLIST_LOCK_STALE_TIMEOUT`
//! = 2 min); waiting gives up after `timeout` (Dovecot: stale timeout + 2 s).

use super::filename::hostname;
use super::fsutil::{io_err, IoCtx};
use crate::store::{Error, ErrorKind, Result};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Dovecot's `MAILDIR_UIDLIST_LOCK_STALE_TIMEOUT`.
pub const STALE_TIMEOUT: Duration = Duration::from_secs(120);
/// Dovecot's uidlist lock wait: stale timeout + 2 s.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(122);

/// A held dot-lock; removed on drop.
#[derive(Debug)]
pub struct DotLock {
    /// The `.lock` file we created (and only we may remove).
    path: PathBuf,
}

impl DotLock {
    /// Locks `target` by creating `<target>.lock`, waiting up to `timeout`.
    pub fn acquire(target: &Path, timeout: Duration) -> Result<DotLock> {
        let mut lock = target.as_os_str().to_owned();
        lock.push(".lock");
        let path = PathBuf::from(lock);
        let start = Instant::now();
        let mut wait = Duration::from_micros(200);
        loop {
            let mode = super::fsutil::file_mode_for(path.parent().unwrap_or(Path::new(".")));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&path)
            {
                Ok(mut f) => {
                    let content = format!("{}:{}", std::process::id(), hostname());
                    f.write_all(content.as_bytes()).ctx("write", &path)?;
                    return Ok(DotLock { path });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if is_stale(&path) {
                        tracing::warn!(lock = %path.display(), "overriding stale dotlock");
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                }
                Err(e) => return Err(io_err(e, "create dotlock", &path)),
            }
            if start.elapsed() >= timeout {
                return Err(Error::new(
                    ErrorKind::Temporary,
                    format!("timeout waiting for dotlock {}", path.display()),
                ));
            }
            let jitter = Duration::from_micros(rand::random::<u64>() % 200);
            std::thread::sleep(wait + jitter);
            wait = (wait * 2).min(Duration::from_millis(50));
        }
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            tracing::error!(lock = %self.path.display(), "removing dotlock failed: {e}");
        }
    }
}

/// Whether an existing lock file may be overridden.
fn is_stale(path: &Path) -> bool {
    let Ok(meta) = fs::metadata(path) else {
        return false; // gone already: the next create will tell
    };
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    if age >= STALE_TIMEOUT {
        return true;
    }
    // A lock still being written has no content yet: not stale until it ages out.
    let Ok(content) = fs::read_to_string(path) else {
        return false;
    };
    let Some((pid, host)) = content.trim().split_once(':') else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    host == hostname() && pid != 0 && !Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_and_releases() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("dovecot-uidlist");
        let lock = DotLock::acquire(&target, LOCK_TIMEOUT).unwrap();
        let lock_path = dir.path().join("dovecot-uidlist.lock");
        let content = fs::read_to_string(&lock_path).unwrap();
        assert_eq!(content, format!("{}:{}", std::process::id(), hostname()));
        // Held by a live process (us): a second attempt times out.
        let err = DotLock::acquire(&target, Duration::from_millis(30)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Temporary);
        drop(lock);
        assert!(!lock_path.exists());
        drop(DotLock::acquire(&target, Duration::from_millis(30)).unwrap());
    }

    #[test]
    fn overrides_lock_of_dead_process_and_old_lock() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("dovecot-uidlist");
        let lock_path = dir.path().join("dovecot-uidlist.lock");
        // pid_max on Linux is at most 2^22, so this pid cannot be alive.
        fs::write(&lock_path, format!("99999999:{}", hostname())).unwrap();
        drop(DotLock::acquire(&target, Duration::from_secs(5)).unwrap());
        // An old lock from another host is stale by age.
        fs::write(&lock_path, "1:otherhost").unwrap();
        let old = SystemTime::now() - STALE_TIMEOUT - Duration::from_secs(5);
        fs::File::options()
            .write(true)
            .open(&lock_path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        drop(DotLock::acquire(&target, Duration::from_secs(5)).unwrap());
        // A fresh lock from another host is respected.
        fs::write(&lock_path, "1:otherhost").unwrap();
        assert!(DotLock::acquire(&target, Duration::from_millis(30)).is_err());
    }
}
