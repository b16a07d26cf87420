//! Dovecot-compatible dot-locks (`<file>.lock`), made as `lib/file-dotlock.c` makes them and
//! configured as `maildir-uidlist.c` configures them for `dovecot-uidlist`
//! (ARCHITECTURE.md, "Mail store").
//!
//! **Taking.** `<pid>:<hostname>` is written into a uniquely named temp file beside the lock
//! ([`temp_path`]), which is then `link()`ed to `<file>.lock`: the lock appears with its
//! content whole or not at all, so a crash never leaves an empty lock. `EEXIST` means it is
//! held. Where the file system refuses hard links (`EPERM`, `ENOTSUP`) the lock is created with
//! `O_EXCL` and written, and removed again if the write fails. Any other error (`ENOSPC`,
//! `EDQUOT`, `EIO`, `EACCES`) fails at once with its kind: our own failure never waits for the
//! lock timeout and never leaves a lock behind.
//!
//! **Stale locks** are taken over at once when
//! - the holder is a process of this host that is gone (no `/proc/<pid>`);
//! - the lock is empty or unparsable and older than [`EMPTY_STALE`] (5 s: a lock made by
//!   create-then-write whose writer died or failed; a live writer fills it within
//!   microseconds);
//! - it has not changed for [`STALE_TIMEOUT`] (Dovecot's 2 minutes) and neither has the file
//!   it protects: Dovecot's rule, the only one for locks of other hosts, and what heals a lock
//!   whose pid was reused after a reboot.
//!
//! A live lock — ours or Dovecot's, the same format — is respected; waiting gives up after
//! `timeout` (Dovecot: stale timeout + 2 s) with [`ErrorKind::Temporary`].
//!
//! **Race-free takeover.** Taking over means unlinking a lock someone else made, so it must
//! never remove a lock that another taker has just made in its place. Takers of this server
//! serialise on a takeover lock, `<file>.lock.takeover` (made with `O_EXCL`, never an
//! `flock`: NFS; removed when its holder is gone or after [`TAKEOVER_STALE`]) and, holding
//! it, unlink the lock only if it is still the very file judged stale: same
//! device, inode, ctime (to the nanosecond), size and content. Two of our processes therefore
//! never both believe they hold the lock. Release works the same way: the lock is removed only
//! while it is still ours, so a lock another process made after overriding ours survives
//! (under the takeover lock only for a lock held [`RELEASE_UNGUARDED`] or more: nobody can
//! have judged a younger one stale).
//! Dovecot's own takeover (unlink, then a short sleep) is not part of this protocol; it only
//! overrides locks of dead processes or ones unchanged for 2 minutes, which ours never are.

use super::filename::hostname;
use super::fsutil::{file_mode_for, fix_mode, io_err, temp_path, IoCtx};
use crate::store::{Error, ErrorKind, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Dovecot's `MAILDIR_UIDLIST_LOCK_STALE_TIMEOUT`.
pub const STALE_TIMEOUT: Duration = Duration::from_secs(120);
/// Dovecot's uidlist lock wait: stale timeout + 2 s.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(122);
/// An empty or unparsable lock older than this is a leftover (see the module docs).
pub const EMPTY_STALE: Duration = Duration::from_secs(5);
/// Waiting this long for a lock is worth one line in the daemon log.
const WAIT_REPORT: Duration = Duration::from_secs(5);

/// How the lock file is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    /// Temp file + `link()`: atomic.
    Link,
    /// `O_EXCL` create + write, for file systems without hard links.
    Excl,
}

/// What identifies one version of a lock file: a file made after it, even one that reuses
/// its inode number, differs in ctime.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    ctime: (i64, i64),
    size: u64,
}

impl FileId {
    fn of(m: &fs::Metadata) -> FileId {
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            ctime: (m.ctime(), m.ctime_nsec()),
            size: m.size(),
        }
    }
}

/// A held dot-lock; removed on drop (if it is still ours).
#[derive(Debug)]
pub struct DotLock {
    /// The `.lock` file we made.
    path: PathBuf,
    /// Which file that was: only that one is removed.
    id: FileId,
    /// When we made it: a lock released well before [`STALE_TIMEOUT`] cannot have been
    /// judged stale by anyone, so its release needs no takeover lock (see `Drop`).
    made: Instant,
}

/// `<target>.lock`.
fn lock_path(target: &Path) -> PathBuf {
    let mut lock = target.as_os_str().to_owned();
    lock.push(".lock");
    PathBuf::from(lock)
}

fn dir_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

impl DotLock {
    /// Locks `target` by making `<target>.lock`, waiting up to `timeout` for a live holder.
    pub fn acquire(target: &Path, timeout: Duration) -> Result<DotLock> {
        Self::acquire_with(target, timeout, Method::Link)
    }

    fn acquire_with(target: &Path, timeout: Duration, mut method: Method) -> Result<DotLock> {
        let path = lock_path(target);
        let content = format!("{}:{}", std::process::id(), hostname());
        let start = Instant::now();
        let mut wait = Duration::from_micros(200);
        let mut temp: Option<Temp> = None;
        let mut reported = false;
        loop {
            let made = match method {
                Method::Link => {
                    let t = match temp.as_mut() {
                        Some(t) => t,
                        None => temp.insert(Temp::create(&path, &content)?),
                    };
                    match t.link_to(&path) {
                        Err(e) if link_unsupported(&e) => {
                            tracing::debug!(lock = %path.display(), "link: {e}; using O_EXCL");
                            method = Method::Excl;
                            temp = None;
                            continue;
                        }
                        Err(e) => return Err(io_err(e, "link", &path)),
                        Ok(false) => None,
                        Ok(true) => {
                            let t = temp.take().expect("linked above");
                            Some(t.finish(&path)?)
                        }
                    }
                }
                Method::Excl => create_excl(&path, &content)?,
            };
            if let Some(id) = made {
                return Ok(DotLock {
                    path,
                    id,
                    made: Instant::now(),
                });
            }
            // Gone (released, or taken over by us): try again without sleeping.
            let (holder, again) = match judge(target, &path)? {
                Verdict::Gone => (None, true),
                Verdict::Stale(seen, why) => (None, take_over(&path, &seen, &why)?),
                Verdict::Held(holder) => (Some(holder), false),
            };
            let waited = start.elapsed();
            if again && waited < timeout {
                continue;
            }
            if waited >= timeout {
                return Err(Error::new(
                    ErrorKind::Temporary,
                    format!(
                        "timeout after {}s waiting for dotlock {} (held: {})",
                        waited.as_secs(),
                        path.display(),
                        holder.as_deref().unwrap_or("?")
                    ),
                ));
            }
            if waited >= WAIT_REPORT && !reported {
                reported = true;
                tracing::info!(
                    lock = %path.display(),
                    holder = holder.as_deref().unwrap_or("?"),
                    "waiting for a dotlock"
                );
            }
            let jitter = Duration::from_micros(rand::random::<u64>() % 200);
            std::thread::sleep((wait + jitter).min(timeout.saturating_sub(waited)));
            wait = (wait * 2).min(Duration::from_millis(50));
        }
    }
}

/// A lock held for less than this is released without the takeover lock: nobody can have
/// judged it stale (its content is whole from the start, its holder — we — is alive, and
/// the "unchanged" rule needs [`STALE_TIMEOUT`]), so no taker can have replaced it between
/// our check and our unlink. That saves a file created and removed per write: on ext4 every
/// such file makes the next inode allocation search longer (`recently_deleted`).
const RELEASE_UNGUARDED: Duration = Duration::from_secs(60);

impl Drop for DotLock {
    fn drop(&mut self) {
        let _guard = (self.made.elapsed() >= RELEASE_UNGUARDED).then(|| DirGuard::lock(&self.path));
        match fs::symlink_metadata(&self.path) {
            Ok(m) if FileId::of(&m) == self.id => {
                if let Err(e) = fs::remove_file(&self.path) {
                    tracing::error!(lock = %self.path.display(), "removing dotlock failed: {e}");
                }
            }
            Ok(_) => tracing::warn!(
                lock = %self.path.display(),
                "our dotlock was overridden; leaving the new one alone"
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::warn!(lock = %self.path.display(), "our dotlock was deleted under us")
            }
            Err(e) => tracing::error!(lock = %self.path.display(), "lstat of dotlock: {e}"),
        }
    }
}

/// `link()` is not available on this file system: fall back to `O_EXCL`.
fn link_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPERM) | Some(libc::ENOTSUP) | Some(libc::ENOSYS)
    ) || e.raw_os_error() == Some(libc::EOPNOTSUPP)
}

/// Our temp file with the lock content; removed on drop.
struct Temp {
    path: PathBuf,
    /// `None` once closed by [`Temp::finish`].
    file: Option<File>,
    /// Last time its mtime was set (the lock must look fresh when it appears).
    touched: Instant,
}

impl Temp {
    fn create(lock: &Path, content: &str) -> Result<Temp> {
        let path = temp_path(lock);
        let mode = file_mode_for(dir_of(lock));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .ctx("create", &path)?;
        // From here on, drop removes it.
        fix_mode(&file, mode, &path)?;
        let t = Temp {
            path,
            file: Some(file),
            touched: Instant::now(),
        };
        t.file
            .as_ref()
            .expect("open until finish")
            .write_all(content.as_bytes())
            .ctx("write", &t.path)?;
        Ok(t)
    }

    /// Links the temp file as `lock`: `Ok(true)` made, `Ok(false)` a lock exists.
    fn link_to(&mut self, lock: &Path) -> io::Result<bool> {
        if self.touched.elapsed() >= Duration::from_secs(1) {
            // Others age a lock by its mtime: a temp file made while we waited must not
            // appear as an old lock.
            self.file
                .as_ref()
                .expect("open until finish")
                .set_modified(SystemTime::now())?;
            self.touched = Instant::now();
        }
        match fs::hard_link(&self.path, lock) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// After a successful link: closes the temp file, removes its name and returns the lock's
    /// identity. The unlink changes the ctime, so the identity is taken after it, from the
    /// lock's path; and the file is closed first, because a file system that defers the
    /// unlink of an open file (FUSE: `.fuse_hidden*`; NFS: silly rename) changes the ctime
    /// only at its last close, after an identity taken earlier (the lock then looks
    /// overridden at release and is left behind). No one replaces the lock meanwhile: it is
    /// fresh and its process alive.
    fn finish(mut self, lock: &Path) -> Result<FileId> {
        drop(self.file.take());
        let removed = fs::remove_file(&self.path);
        let meta = fs::symlink_metadata(lock);
        match (removed, meta) {
            (Ok(()), Ok(m)) => Ok(FileId::of(&m)),
            (Err(e), _) | (_, Err(e)) => {
                // Do not keep a lock we cannot release safely.
                let _ = fs::remove_file(lock);
                Err(io_err(e, "unlink", &self.path))
            }
        }
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!("removing {}: {e}", self.path.display());
            }
        }
    }
}

/// The `O_EXCL` way: `Ok(Some(..))` made, `Ok(None)` a lock exists. A lock whose write failed
/// is removed again (ours for sure: an empty lock this young is never taken over).
fn create_excl(path: &Path, content: &str) -> Result<Option<FileId>> {
    let mode = file_mode_for(dir_of(path));
    let f = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
        Err(e) => return Err(io_err(e, "create", path)),
    };
    let done = fix_mode(&f, mode, path)
        .and_then(|()| (&f).write_all(content.as_bytes()).ctx("write", path))
        .and_then(|()| f.metadata().ctx("fstat", path));
    match done {
        Ok(m) => Ok(Some(FileId::of(&m))),
        Err(e) => {
            drop(f);
            let _ = fs::remove_file(path);
            Err(e)
        }
    }
}

/// One look at an existing lock: its identity and content, read from one open file.
#[derive(Debug)]
struct Seen {
    id: FileId,
    content: Vec<u8>,
}

impl Seen {
    /// `Ok(None)` when there is no lock.
    fn read(path: &Path) -> Result<Option<(Seen, SystemTime)>> {
        let f = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(e, "open", path)),
        };
        let meta = f.metadata().ctx("fstat", path)?;
        let mut content = Vec::with_capacity(64);
        f.take(512)
            .read_to_end(&mut content)
            .ctx("read", path)?;
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(Some((
            Seen {
                id: FileId::of(&meta),
                content,
            },
            mtime,
        )))
    }
}

/// What an existing lock is.
#[derive(Debug)]
enum Verdict {
    /// No lock any more: try again at once.
    Gone,
    /// May be taken over (with why, for the log).
    Stale(Seen, String),
    /// Respected; the holder as written in the lock, for the log.
    Held(String),
}

/// Judges the lock at `path` by the rules in the module docs.
fn judge(target: &Path, path: &Path) -> Result<Verdict> {
    let Some((seen, mtime)) = Seen::read(path)? else {
        return Ok(Verdict::Gone);
    };
    let now = SystemTime::now();
    let age = now.duration_since(mtime).unwrap_or_default();
    let text = String::from_utf8_lossy(&seen.content);
    let text = text.strip_suffix('\n').unwrap_or(&text).to_string();
    let owner = text.split_once(':').and_then(|(pid, host)| {
        pid.parse::<u32>()
            .ok()
            .filter(|&p| p > 0)
            .map(|p| (p, host.to_string()))
    });
    let holder = if text.is_empty() {
        "empty".to_string()
    } else {
        format!("{text:?}")
    };
    let unchanged = age >= STALE_TIMEOUT && target_unchanged(target, now);
    let why = match owner {
        None if age >= EMPTY_STALE => Some(format!("{holder}, {}s old", age.as_secs())),
        None => None,
        Some((pid, host)) if host == hostname() && pid != std::process::id() => {
            if !process_alive(pid) {
                Some(format!("{holder}: process {pid} is gone"))
            } else if unchanged {
                Some(format!("{holder}: unchanged for {}s", age.as_secs()))
            } else {
                None
            }
        }
        Some(_) if unchanged => Some(format!("{holder}: unchanged for {}s", age.as_secs())),
        Some(_) => None,
    };
    Ok(match why {
        Some(why) => Verdict::Stale(seen, why),
        None => Verdict::Held(holder),
    })
}

/// The protected file has not changed for [`STALE_TIMEOUT`] (or does not exist), as Dovecot
/// checks before overriding a lock by age.
fn target_unchanged(target: &Path, now: SystemTime) -> bool {
    match fs::metadata(target) {
        Ok(m) => m
            .modified()
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age >= STALE_TIMEOUT),
        Err(_) => true,
    }
}

/// Whether process `pid` of this host exists. Without `/proc` nothing can be told: alive.
fn process_alive(pid: u32) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Removes the stale lock `seen` if it is still that very file, holding the directory's
/// takeover lock. `Ok(true)`: it is gone, try to lock at once; `Ok(false)`: it was
/// replaced meanwhile (by a taker or its holder), judge again.
fn take_over(path: &Path, seen: &Seen, why: &str) -> Result<bool> {
    let _guard = DirGuard::lock(path);
    let Some((now, _)) = Seen::read(path)? else {
        return Ok(true);
    };
    if now.id != seen.id || now.content != seen.content {
        return Ok(false);
    }
    match fs::remove_file(path) {
        Ok(()) => {
            tracing::warn!(lock = %path.display(), "took over a stale dotlock ({why})");
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(io_err(e, "unlink", path)),
    }
}

/// A takeover lock older than this is a leftover of a taker that died holding it (a takeover
/// holds it for the microseconds of a read and an unlink).
const TAKEOVER_STALE: Duration = Duration::from_secs(5);
/// At most this long waiting for the takeover lock; then takers go on without it (best
/// effort, as before: Dovecot's takers have no such lock at all).
const TAKEOVER_WAIT: Duration = Duration::from_secs(2);

/// The takeover lock of a dot-lock (see the module docs): `<file>.lock.takeover`, itself
/// made with `O_EXCL` and holding `<pid>:<host>`. A dot-lock, not an `flock`, so that no
/// `flock` is ever taken under `data_dir` (ARCHITECTURE.md, "Mail store": NFS). Best
/// effort: where it cannot be made (no permission, a stuck one), takers go on without it.
struct DirGuard {
    /// The takeover lock we made; removed on drop.
    held: Option<(PathBuf, FileId)>,
}

impl DirGuard {
    fn lock(lock: &Path) -> DirGuard {
        let mut name = lock.as_os_str().to_owned();
        name.push(".takeover");
        let path = PathBuf::from(name);
        let content = format!("{}:{}", std::process::id(), hostname());
        let start = Instant::now();
        let mut wait = Duration::from_micros(50);
        while start.elapsed() < TAKEOVER_WAIT {
            match create_excl(&path, &content) {
                Ok(Some(id)) => return DirGuard { held: Some((path, id)) },
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!("takeover lock {}: {e}", path.display());
                    return DirGuard { held: None };
                }
            }
            // Held: by a live taker (wait a moment) or by a dead one (remove it).
            if let Ok(Some((seen, mtime))) = Seen::read(&path) {
                let text = String::from_utf8_lossy(&seen.content);
                let dead = text
                    .split_once(':')
                    .filter(|(_, host)| *host == hostname())
                    .and_then(|(pid, _)| pid.parse::<u32>().ok())
                    .is_some_and(|pid| !process_alive(pid));
                let old = SystemTime::now()
                    .duration_since(mtime)
                    .is_ok_and(|age| age >= TAKEOVER_STALE);
                if dead || old {
                    if let Ok(Some((now, _))) = Seen::read(&path) {
                        if now.id == seen.id && now.content == seen.content {
                            let _ = fs::remove_file(&path);
                        }
                    }
                    continue;
                }
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_millis(5));
        }
        tracing::debug!("takeover lock {}: still held; going on", path.display());
        DirGuard { held: None }
    }
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some((path, id)) = &self.held {
            if fs::symlink_metadata(path).is_ok_and(|m| FileId::of(&m) == *id) {
                let _ = fs::remove_file(path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};

    /// pid_max on Linux is at most 2^22, so this pid cannot be alive.
    const DEAD: u32 = 99_999_999;

    fn age(path: &Path, by: Duration) {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() - by)
            .unwrap();
    }

    /// Everything in `dir` but `keep`: no temp file may be left behind.
    fn others(dir: &Path, keep: &[&str]) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !keep.contains(&n.as_str()))
            .collect()
    }

    #[test]
    fn excludes_and_releases() {
        for method in [Method::Link, Method::Excl] {
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join("dovecot-uidlist");
            let lock = DotLock::acquire_with(&target, LOCK_TIMEOUT, method).unwrap();
            let lock_path = dir.path().join("dovecot-uidlist.lock");
            let content = fs::read_to_string(&lock_path).unwrap();
            assert_eq!(content, format!("{}:{}", std::process::id(), hostname()));
            assert!(others(dir.path(), &["dovecot-uidlist.lock"]).is_empty());
            // Held by a live process (us): a second attempt times out.
            let err = DotLock::acquire_with(&target, Duration::from_millis(30), method)
                .unwrap_err();
            assert_eq!(err.kind, ErrorKind::Temporary);
            assert!(err.message.contains("held"), "{}", err.message);
            drop(lock);
            assert!(!lock_path.exists());
            drop(DotLock::acquire_with(&target, Duration::from_millis(30), method).unwrap());
            assert!(others(dir.path(), &[]).is_empty(), "no temp file left");
        }
    }

    #[test]
    fn overrides_lock_of_dead_process_and_old_lock() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("dovecot-uidlist");
        let lock_path = dir.path().join("dovecot-uidlist.lock");
        fs::write(&lock_path, format!("{DEAD}:{}", hostname())).unwrap();
        drop(DotLock::acquire(&target, Duration::from_secs(5)).unwrap());
        // An old lock from another host is stale by age (the target is unchanged too).
        fs::write(&lock_path, "1:otherhost").unwrap();
        age(&lock_path, STALE_TIMEOUT + Duration::from_secs(5));
        drop(DotLock::acquire(&target, Duration::from_secs(5)).unwrap());
        // ...but not while the file it protects changed lately (Dovecot's rule).
        fs::write(&target, "x").unwrap();
        fs::write(&lock_path, "1:otherhost").unwrap();
        age(&lock_path, STALE_TIMEOUT + Duration::from_secs(5));
        assert!(DotLock::acquire(&target, Duration::from_millis(30)).is_err());
        // A fresh lock from another host is respected.
        fs::write(&lock_path, "1:otherhost").unwrap();
        assert!(DotLock::acquire(&target, Duration::from_millis(30)).is_err());
        // So is one of a live process of this host (pid 1 always exists).
        fs::write(&lock_path, format!("1:{}", hostname())).unwrap();
        assert!(DotLock::acquire(&target, Duration::from_millis(30)).is_err());
        assert!(lock_path.exists());
    }

    #[test]
    fn empty_or_unparsable_lock_is_taken_over_once_aged() {
        for junk in ["", "\n", "garbage", "0:host", "-5:host", ":"] {
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join("dovecot-uidlist");
            let lock_path = dir.path().join("dovecot-uidlist.lock");
            fs::write(&lock_path, junk).unwrap();
            // Young: maybe a create-then-write writer between its two steps.
            let err = DotLock::acquire(&target, Duration::from_millis(30)).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Temporary, "{junk:?}");
            age(&lock_path, EMPTY_STALE + Duration::from_secs(1));
            let lock = DotLock::acquire(&target, Duration::from_secs(5)).unwrap();
            let content = fs::read_to_string(&lock_path).unwrap();
            assert_eq!(content, format!("{}:{}", std::process::id(), hostname()));
            drop(lock);
        }
    }

    #[test]
    fn release_leaves_a_lock_that_replaced_ours() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("dovecot-uidlist");
        let lock_path = dir.path().join("dovecot-uidlist.lock");
        let lock = DotLock::acquire(&target, LOCK_TIMEOUT).unwrap();
        fs::remove_file(&lock_path).unwrap();
        fs::write(&lock_path, "1:otherhost").unwrap();
        drop(lock);
        assert_eq!(fs::read_to_string(&lock_path).unwrap(), "1:otherhost");
    }

    #[test]
    fn own_failure_fails_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("no/such/dir/dovecot-uidlist");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(DotLock::acquire(&target, LOCK_TIMEOUT).map(drop));
        });
        // Bounded: a failure to create must not wait for the 122 s lock timeout.
        let got = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("returned without waiting for the lock timeout");
        assert_eq!(got.unwrap_err().kind, ErrorKind::NotFound);
    }

    /// Counts increments made under the lock by `threads` threads, `rounds` each, with a
    /// non-atomic read-modify-write of a file; `stale` plants a stale lock before each round so
    /// every round starts with a takeover race.
    fn contend(threads: usize, rounds: usize, stale: Option<&str>) {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("dovecot-uidlist");
        let lock_path = dir.path().join("dovecot-uidlist.lock");
        let counter = dir.path().join("counter");
        fs::write(&counter, "0").unwrap();
        let inside = Arc::new(AtomicUsize::new(0));
        for round in 0..rounds {
            if let Some(junk) = stale {
                fs::write(&lock_path, junk).unwrap();
                age(&lock_path, EMPTY_STALE + Duration::from_secs(1));
            }
            let barrier = Arc::new(Barrier::new(threads));
            let handles: Vec<_> = (0..threads)
                .map(|i| {
                    let (target, counter) = (target.clone(), counter.clone());
                    let (inside, barrier) = (inside.clone(), barrier.clone());
                    let method = if (i + round) % 3 == 0 {
                        Method::Excl
                    } else {
                        Method::Link
                    };
                    std::thread::spawn(move || {
                        barrier.wait();
                        let lock =
                            DotLock::acquire_with(&target, Duration::from_secs(60), method)
                                .unwrap();
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                        let n: u64 = fs::read_to_string(&counter).unwrap().parse().unwrap();
                        std::thread::yield_now();
                        fs::write(&counter, (n + 1).to_string()).unwrap();
                        inside.fetch_sub(1, Ordering::SeqCst);
                        drop(lock);
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
        }
        let n: usize = fs::read_to_string(&counter).unwrap().parse().unwrap();
        assert_eq!(n, threads * rounds);
        assert!(!lock_path.exists());
        assert!(others(dir.path(), &["counter"]).is_empty(), "temp files left");
    }

    /// Child mode of [`contending_processes_keep_count_exact`]: increments the counter in
    /// `DOTLOCK_TEST_DIR` `DOTLOCK_TEST_ROUNDS` times under the lock.
    #[test]
    fn child_incrementer() {
        let Ok(dir) = std::env::var("DOTLOCK_TEST_DIR") else {
            return; // normal test run: nothing to do
        };
        let rounds: usize = std::env::var("DOTLOCK_TEST_ROUNDS")
            .unwrap()
            .parse()
            .unwrap();
        let dir = PathBuf::from(dir);
        let (target, counter) = (dir.join("dovecot-uidlist"), dir.join("counter"));
        for _ in 0..rounds {
            let lock = DotLock::acquire(&target, Duration::from_secs(60)).unwrap();
            let n: u64 = fs::read_to_string(&counter).unwrap().parse().unwrap();
            fs::write(&counter, (n + 1).to_string()).unwrap();
            drop(lock);
        }
    }

    #[test]
    fn contending_processes_keep_count_exact() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("counter"), "0").unwrap();
        // They start with a takeover race: the lock of a dead process.
        fs::write(
            dir.path().join("dovecot-uidlist.lock"),
            format!("{DEAD}:{}", hostname()),
        )
        .unwrap();
        let (procs, rounds) = (4, 150);
        let children: Vec<_> = (0..procs)
            .map(|_| {
                std::process::Command::new(std::env::current_exe().unwrap())
                    .args([
                        "--exact",
                        "store::maildir::dotlock::tests::child_incrementer",
                        "--test-threads=1",
                    ])
                    .env("DOTLOCK_TEST_DIR", dir.path())
                    .env("DOTLOCK_TEST_ROUNDS", rounds.to_string())
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut c in children {
            assert!(c.wait().unwrap().success());
        }
        let n: usize = fs::read_to_string(dir.path().join("counter"))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(n, procs * rounds);
        assert!(others(dir.path(), &["counter"]).is_empty(), "lock or temps left");
    }

    #[test]
    fn contending_threads_keep_count_exact() {
        contend(8, 25, None);
    }

    #[test]
    fn racing_takeovers_of_a_dead_process_lock_admit_one_holder() {
        let dead = format!("{DEAD}:{}", hostname());
        contend(8, 25, Some(&dead));
    }

    #[test]
    fn racing_takeovers_of_an_empty_lock_admit_one_holder() {
        contend(8, 25, Some(""));
    }
}
