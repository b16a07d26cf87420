//! File-system helpers: io error → [`ErrorKind`] mapping (with the path in the message),
//! atomic replace (temp file, fsync, rename, fsync dir), directory fsync, and the one naming
//! scheme of our temp files (`<name>.tmp.<pid>.<8 hex>`) with the sweep that removes the ones
//! a crash left behind.

use crate::store::{Error, ErrorKind, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Our temp files of metadata writes older than this are left-overs of a crash (a writer
/// holds one for milliseconds).
pub const TEMP_STALE: Duration = Duration::from_secs(3600);

/// Maps an io error to the store's error kinds; the message names the operation and path.
pub fn io_err(e: io::Error, what: &str, path: &Path) -> Error {
    let kind = match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => ErrorKind::NotFound,
        Some(libc::EEXIST) | Some(libc::ENOTEMPTY) => ErrorKind::Exists,
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => ErrorKind::NoPermission,
        Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EFBIG) => ErrorKind::OverLimit,
        Some(libc::EAGAIN) | Some(libc::EINTR) | Some(libc::ETIMEDOUT) | Some(libc::EBUSY) => {
            ErrorKind::Temporary
        }
        _ => match e.kind() {
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::AlreadyExists => ErrorKind::Exists,
            io::ErrorKind::PermissionDenied => ErrorKind::NoPermission,
            _ => ErrorKind::Internal,
        },
    };
    Error::new(kind, format!("{what}({}) failed: {e}", path.display()))
}

/// `Result` adapter: `.ctx("open", &path)?`.
pub trait IoCtx<T> {
    fn ctx(self, what: &str, path: &Path) -> Result<T>;
}

impl<T> IoCtx<T> for io::Result<T> {
    fn ctx(self, what: &str, path: &Path) -> Result<T> {
        self.map_err(|e| io_err(e, what, path))
    }
}

/// How many times an operation that failed with `ESTALE` is tried again, as Dovecot's
/// `NFS_ESTALE_RETRY_COUNT`.
pub const ESTALE_RETRIES: usize = 10;

/// Runs `op`, again (at most [`ESTALE_RETRIES`] more times) while it fails with `ESTALE`:
/// on NFS a file handle goes stale when another host replaced the file (a uidlist rename, a
/// flag rename in `cur/`), and opening the path again finds the new file. `op` must be an
/// open, read or readdir by path (repeatable, with no effect to undo). Other errors and the
/// last `ESTALE` are returned as they are.
pub fn retry_estale<T>(mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut left = ESTALE_RETRIES;
    loop {
        match op() {
            Err(e) if left > 0 && e.raw_os_error() == Some(libc::ESTALE) => {
                left -= 1;
                tracing::debug!("ESTALE, retrying ({left} retries left)");
            }
            r => return r,
        }
    }
}

/// `fs::read` of a whole file, retried on `ESTALE` ([`retry_estale`]).
pub fn read_file(path: &Path) -> io::Result<Vec<u8>> {
    retry_estale(|| fs::read(path))
}

/// `fs::read_dir` collected, retried on `ESTALE` as a whole ([`retry_estale`]): an entry
/// that fails midway restarts the listing, so a caller never sees half a directory.
pub fn read_dir_all(dir: &Path) -> io::Result<Vec<fs::DirEntry>> {
    retry_estale(|| fs::read_dir(dir)?.collect())
}

/// Mode for files created in `dir`, as Dovecot derives it: the directory's permission bits
/// without execute (a 0700 Maildir gets 0600 files, a group-shared 0770 one 0660).
pub fn file_mode_for(dir: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(dir).map(|m| m.mode() & 0o666).unwrap_or(0o600)
}

/// Mode for directories created in `dir`: the parent's permission bits.
pub fn dir_mode_for(dir: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(dir).map(|m| m.mode() & 0o777).unwrap_or(0o700)
}

/// Applies `mode` exactly (creation modes pass through the umask; Dovecot clears it).
/// Private modes need nothing: the umask never adds bits.
pub fn fix_mode(f: &File, mode: u32, path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if mode & 0o077 != 0 {
        f.set_permissions(fs::Permissions::from_mode(mode))
            .ctx("fchmod", path)?;
    }
    Ok(())
}

/// The directory counterpart of [`fix_mode`]: applies `mode` to the directory at `path`
/// exactly (`DirBuilder` modes pass through the umask too).
pub fn fix_dir_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if mode & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| io_err(e, "chmod", path))?;
    }
    Ok(())
}

/// fsync a directory so a rename or create inside it is durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|f| crate::metrics::get().fsync(|| f.sync_all())).ctx("fsync", dir)
}

/// A fresh temp name beside `path`: `<name>.tmp.<pid>.<8 hex>`. Unique per call, so two
/// writers never share a temp file; [`is_temp_name`] recognises it for the sweep.
pub fn temp_path(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!(
        "{file}.tmp.{}.{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ))
}

/// Whether `name` is one of ours from [`temp_path`]: `<name>.tmp.<digits>.<8 hex>`.
pub fn is_temp_name(name: &str) -> bool {
    let mut parts = name.rsplitn(4, '.');
    let (Some(hex), Some(pid), Some("tmp"), Some(base)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !base.is_empty()
        && hex.len() == 8
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
}

/// Removes our temp files ([`is_temp_name`]) in `dir` last changed more than `age` ago: what
/// a writer killed between create and rename or unlink left. Returns how many went.
pub fn sweep_temps(dir: &Path, age: Duration) -> usize {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    let now = SystemTime::now();
    let mut removed = 0;
    for e in rd.flatten().take(100_000) {
        let name = e.file_name();
        if !name.to_str().is_some_and(is_temp_name) {
            continue;
        }
        let old = e
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
            .is_some_and(|m| m + age < now);
        if old && fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!("{}: removed {removed} stale temp file(s)", dir.display());
    }
    removed
}

/// Replaces `path` with `data`: write a [`temp_path`], fsync, rename, fsync dir. The temp
/// file is removed when any step before the rename fails.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(file_mode_for(dir))
            .open(&tmp)
            .ctx("open", &tmp)?;
        fix_mode(&f, file_mode_for(dir), &tmp)?;
        f.write_all(data).ctx("write", &tmp)?;
        crate::metrics::get().fsync(|| f.sync_all()).ctx("fsync", &tmp)?;
        fs::rename(&tmp, path).ctx("rename", path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    fsync_dir(dir)
}

/// Creates a Maildir (`cur new tmp`) at `dir` with directory mode `mode`, tolerating parts
/// that already exist.
pub fn create_maildir(dir: &Path, mode: u32) -> Result<()> {
    for sub in ["cur", "new", "tmp"] {
        let p = dir.join(sub);
        let existed = p.is_dir();
        match fs::DirBuilder::new().recursive(true).mode(mode).create(&p) {
            Ok(()) if !existed => fix_dir_mode(&p, mode)?,
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(e, "mkdir", &p)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An operation that fails with `errno` its first `n` calls, then succeeds; counts calls.
    fn failing(n: usize, errno: i32, calls: &mut usize) -> impl FnMut() -> io::Result<u32> + '_ {
        move || {
            *calls += 1;
            if *calls <= n {
                Err(io::Error::from_raw_os_error(errno))
            } else {
                Ok(7)
            }
        }
    }

    #[test]
    fn estale_is_retried_up_to_the_limit() {
        for n in [0, 1, 2, ESTALE_RETRIES - 1, ESTALE_RETRIES] {
            let mut calls = 0;
            let r = retry_estale(failing(n, libc::ESTALE, &mut calls));
            assert_eq!(r.unwrap(), 7, "{n} ESTALEs then success");
            assert_eq!(calls, n + 1, "{n} ESTALEs: tried once more each");
        }
    }

    #[test]
    fn estale_beyond_the_limit_is_returned() {
        let mut calls = 0;
        let r = retry_estale(failing(usize::MAX, libc::ESTALE, &mut calls));
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::ESTALE));
        assert_eq!(calls, ESTALE_RETRIES + 1, "the first try and the retries, no more");
    }

    #[test]
    fn other_errors_are_not_retried() {
        for errno in [libc::ENOENT, libc::EIO, libc::EACCES, libc::ENOSPC] {
            let mut calls = 0;
            let r = retry_estale(failing(1, errno, &mut calls));
            assert_eq!(r.unwrap_err().raw_os_error(), Some(errno));
            assert_eq!(calls, 1, "errno {errno} is returned at once");
        }
    }

    #[test]
    fn read_helpers_read() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), b"x").unwrap();
        assert_eq!(read_file(&dir.path().join("a")).unwrap(), b"x");
        assert_eq!(read_dir_all(dir.path()).unwrap().len(), 1);
        let missing = read_file(&dir.path().join("b")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn errno_maps_to_kind_with_path() {
        let p = Path::new("/x/y");
        for (errno, kind) in [
            (libc::ENOENT, ErrorKind::NotFound),
            (libc::EEXIST, ErrorKind::Exists),
            (libc::EACCES, ErrorKind::NoPermission),
            (libc::EPERM, ErrorKind::NoPermission),
            (libc::ENOSPC, ErrorKind::OverLimit),
            (libc::EDQUOT, ErrorKind::OverLimit),
            (libc::EAGAIN, ErrorKind::Temporary),
            (libc::EIO, ErrorKind::Internal),
        ] {
            let e = io_err(io::Error::from_raw_os_error(errno), "open", p);
            assert_eq!(e.kind, kind, "errno {errno}");
            assert!(e.message.contains("open(/x/y)"), "{}", e.message);
        }
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        let missing = dir.path().join("no/such/f");
        assert_eq!(
            write_atomic(&missing, b"x").unwrap_err().kind,
            ErrorKind::NotFound
        );
    }

    #[test]
    fn temp_names_are_recognised_and_swept_when_old() {
        let dir = tempfile::tempdir().unwrap();
        let t = temp_path(&dir.path().join("dovecot-uidlist.lock"));
        let name = t.file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.starts_with("dovecot-uidlist.lock.tmp."), "{name}");
        assert!(is_temp_name(&name));
        for other in [
            "dovecot-uidlist",
            "dovecot-uidlist.lock",
            "x.tmp.12.0000000g",
            "x.tmp..00000000",
            ".tmp.12.00000000",
            "x.tmp.1a.00000000",
            "x.tmp.12.000000000",
            "1700000000.M1P2.host,S=4",
        ] {
            assert!(!is_temp_name(other), "{other}");
        }
        let old = dir.path().join("mailserver.cache.tmp.77.0badf00d");
        let fresh = dir.path().join("dovecot-uidlist.tmp.78.0badf00d");
        let keep = dir.path().join("dovecot-uidlist");
        for p in [&old, &fresh, &keep] {
            fs::write(p, "x").unwrap();
        }
        let long_ago = SystemTime::now() - TEMP_STALE - Duration::from_secs(10);
        for p in [&old, &keep] {
            File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(long_ago)
                .unwrap();
        }
        assert_eq!(sweep_temps(dir.path(), TEMP_STALE), 1);
        assert!(!old.exists() && fresh.exists() && keep.exists());
    }
}
