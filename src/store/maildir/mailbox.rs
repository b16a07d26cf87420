//! One Maildir folder shared by every session of this process ([`MaildirMailbox`]).
//!
//! The mailbox keeps a compact cache (UID, file name, flags, keyword bits, size, mtime) built
//! from `dovecot-uidlist` and a readdir of `new/` + `cur/`, refreshed only when the stamps
//! (mtime, size, inode) of those directories or of the uidlist change — message bodies are
//! never read to sync. Files without a uidlist record (MTA deliveries into `new/`, appends
//! interrupted by a crash) get fresh UIDs under the uidlist dot-lock, in delivery order, and
//! `new/` files move to `cur/` with an empty `:2,` info, as Dovecot does.
//!
//! Crash safety (SPEC §7): append writes `tmp/`, fsyncs, renames into `cur/`, fsyncs the
//! directory, then records the UID (dot-lock, re-read, write temp, fsync, rename) before
//! returning. A crash between those steps leaves either junk in `tmp/` (ignored, cleaned
//! after 36 h) or a file in `cur/` without a record, which the next sync numbers; `N` in the
//! uidlist only grows, so UIDs are never reused. Flag changes rename within `cur/`; expunge
//! unlinks then rewrites the uidlist.
//!
//! `\Recent` (RFC 3501 §2.3.2): messages whose UID is at or above the mailbox's "recent floor"
//! (the next UID when this process first opened it, kept by the store across re-opens) are
//! recent in exactly the first view that syncs them. Metadata returned by `store_flags`
//! says `recent: false`: the session keeps the `\Recent` it got from its own view.
//!
//! Limits: at most 26 keywords per mailbox (the letters a Maildir name can carry; more are
//! dropped with a warning, as Dovecot keeps those only in its index); a message that another
//! process renames while our readdir runs is looked for twice before it counts as expunged.

use super::cache::{self, DerivedCache};
use super::dotlock::{DotLock, LOCK_TIMEOUT};
use super::filename::{self, parse};
use super::fsutil::{
    create_maildir, dir_mode_for, file_mode_for, fix_mode, fsync_dir, io_err, write_atomic, IoCtx,
};
use super::keywords::Keywords;
use super::uidlist::Uidlist;
use super::Registry;
use crate::store::{
    Changes, Derived, Error, ErrorKind, FlagOp, Flags, Mailbox, MailboxStatus, MessageMeta, Result,
    View,
};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// `tmp/` files older than this are left-overs of a crash (Dovecot uses 36 hours too).
const TMP_STALE: Duration = Duration::from_secs(36 * 3600);
/// Directory mtimes are coarse: a change this close to our stat may share its mtime.
const MTIME_SLACK: Duration = Duration::from_secs(1);

/// What identifies a version of a file or directory without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    mtime: SystemTime,
    size: u64,
    ino: u64,
}

impl Stamp {
    fn of(path: &Path) -> Result<Option<Stamp>> {
        match fs::metadata(path) {
            Ok(m) => Ok(Some(Stamp {
                mtime: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                size: m.len(),
                ino: m.ino(),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(e, "stat", path)),
        }
    }
    /// Too fresh to trust: another change in the same clock tick would not move the mtime.
    fn fresh(&self, taken_at: SystemTime) -> bool {
        self.mtime + MTIME_SLACK > taken_at
    }
}

/// The stamps the cache was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Stamps {
    new: Option<Stamp>,
    cur: Option<Stamp>,
    uidlist: Option<Stamp>,
}

/// One cached message.
#[derive(Debug, Clone)]
struct Rec {
    uid: u32,
    /// Full file name (base plus `:2,` info) inside `new/` or `cur/`.
    fname: Box<str>,
    /// Still in `new/` (moving it to `cur/` failed, e.g. read-only mailbox).
    in_new: bool,
    flags: Flags,
    /// Keyword bits (`dovecot-keywords` indexes).
    kw: u32,
    /// Size with CRLF line endings (RFC822.SIZE).
    vsize: u64,
    /// INTERNALDATE.
    mtime: SystemTime,
    /// A view of this process already got this message as `\Recent`.
    recent_taken: bool,
}

impl Rec {
    fn base(&self) -> &str {
        self.fname.split(':').next().unwrap_or(&self.fname)
    }
}

/// A directory entry found by a scan.
#[derive(Debug, Clone)]
struct Found {
    fname: String,
    in_new: bool,
}

/// What a dropped handle leaves in the registry so the next handle of its folder starts
/// warm: its sync cache (validated against the disk by the usual stamps before use) and its
/// derived-data cache. Kept at most [`PARK_FOR`], at most [`PARK_MAX`] folders.
pub struct Parked {
    dir: PathBuf,
    at: Instant,
    state: State,
    derived: cache::Inner,
}

impl std::fmt::Debug for Parked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parked").field("dir", &self.dir).finish()
    }
}

/// How long a parked state stays usable (a client reconnecting, a round of STATUS polls).
const PARK_FOR: Duration = Duration::from_secs(60);
/// How many folders' states are parked at most.
const PARK_MAX: usize = 32;

/// Drops parked states that are too old or too many (oldest first).
fn prune(parked: &mut VecDeque<Parked>, now: Instant) {
    while parked.len() > PARK_MAX
        || parked
            .front()
            .is_some_and(|p| now.duration_since(p.at) > PARK_FOR)
    {
        parked.pop_front();
    }
}

/// Forgets the parked state of `dir` (the folder was deleted or renamed).
pub(super) fn unpark(registry: &Registry, dir: &Path) {
    let mut parked = registry.parked.lock().unwrap_or_else(|p| p.into_inner());
    parked.retain(|p| p.dir != dir);
}

/// Mutable state, behind the mailbox mutex.
#[derive(Debug, Default)]
struct State {
    loaded: bool,
    uid_validity: u32,
    next_uid: u32,
    /// Messages in UID order.
    recs: Vec<Rec>,
    keywords: Keywords,
    keywords_stamp: Option<Stamp>,
    stamps: Stamps,
    /// When `stamps` were taken.
    stamped_at: Option<SystemTime>,
    /// UIDs at or above this are `\Recent` until a view claims them.
    recent_floor: u32,
}

impl State {
    fn find(&self, uid: u32) -> Option<usize> {
        self.recs.binary_search_by_key(&uid, |r| r.uid).ok()
    }
}

/// A source message handed to [`MaildirMailbox::import`] by copy/move.
struct Import {
    src_uid: u32,
    path: PathBuf,
    flags: Flags,
    keywords: Vec<String>,
    vsize: u64,
    mtime: SystemTime,
}

/// One Maildir folder; see the module docs.
pub struct MaildirMailbox {
    /// The IMAP name.
    name: String,
    /// The Maildir (holds `cur new tmp` and the Dovecot metadata files).
    dir: PathBuf,
    /// The user's root, where `dovecot-uidvalidity` lives.
    user_root: PathBuf,
    state: Mutex<State>,
    /// Bumped by local writes and by the inotify watcher.
    tx: Arc<tokio::sync::watch::Sender<u64>>,
    /// The one inotify watcher for all sessions, made on the first `changes()`.
    watcher: Mutex<Option<notify::RecommendedWatcher>>,
    /// Set by the watcher: the next refresh rescans even if the stamps look unchanged.
    notified: Arc<AtomicBool>,
    /// Where the recent floor is kept when this handle goes away.
    registry: Arc<Registry>,
    /// ENVELOPE/BODYSTRUCTURE/BODY by UID, persisted in `mailserver.cache`.
    derived: DerivedCache,
}

impl std::fmt::Debug for MaildirMailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaildirMailbox")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .finish()
    }
}

impl Drop for MaildirMailbox {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if !st.loaded {
            return;
        }
        let claimed = st
            .recs
            .iter()
            .rev()
            .find(|r| r.recent_taken)
            .map(|r| r.uid + 1)
            .unwrap_or(0);
        let floor = st.recent_floor.max(claimed);
        if let Ok(mut floors) = self.registry.floors.lock() {
            floors.insert(self.dir.clone(), (st.uid_validity, floor));
        }
        let parked = Parked {
            dir: self.dir.clone(),
            at: Instant::now(),
            state: std::mem::take(st),
            derived: self.derived.take(),
        };
        let mut all = self
            .registry
            .parked
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        all.retain(|p| p.dir != parked.dir);
        all.push_back(parked);
        prune(&mut all, Instant::now());
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Stores `data` as Dovecot does (CRLF → LF); returns (stored bytes, vsize).
fn to_disk_form(data: &[u8]) -> (Vec<u8>, u64) {
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
    let vsize = out.len() as u64 + bare_lf_count(&out);
    (out, vsize)
}

/// LFs not preceded by CR: each becomes CRLF when read.
fn bare_lf_count(data: &[u8]) -> u64 {
    let mut n = 0;
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            n += 1;
        }
        prev = b;
    }
    n
}

/// The message with CRLF line endings.
fn to_crlf(data: &[u8]) -> Vec<u8> {
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
fn compute_vsize(path: &Path) -> Result<u64> {
    let mut f = File::open(path).ctx("open", path)?;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut len, mut lfs) = (0u64, 0u64);
    let mut prev = 0u8;
    loop {
        let n = f.read(&mut buf).ctx("read", path)?;
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            if b == b'\n' && prev != b'\r' {
                lfs += 1;
            }
            prev = b;
        }
        len += n as u64;
    }
    Ok(len + lfs)
}

/// Next UIDVALIDITY for a new mailbox of this user: the current time, or one more than the
/// last one handed out (Dovecot's `dovecot-uidvalidity` file, hex), so two mailboxes made in
/// the same second still differ.
pub(super) fn next_uid_validity(user_root: &Path) -> Result<u32> {
    static GUARD: Mutex<()> = Mutex::new(());
    let _g = GUARD.lock().unwrap_or_else(|p| p.into_inner());
    let path = user_root.join("dovecot-uidvalidity");
    let last = fs::read_to_string(&path)
        .ok()
        .and_then(|s| u32::from_str_radix(s.trim(), 16).ok())
        .unwrap_or(0);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(1);
    let v = now.max(last.wrapping_add(1)).max(1);
    write_atomic(&path, format!("{v:08x}").as_bytes())?;
    Ok(v)
}

impl MaildirMailbox {
    pub(super) fn new(
        name: String,
        dir: PathBuf,
        user_root: PathBuf,
        registry: Arc<Registry>,
    ) -> MaildirMailbox {
        let (tx, _) = tokio::sync::watch::channel(0u64);
        let now = Instant::now();
        let warm = {
            let mut parked = registry.parked.lock().unwrap_or_else(|p| p.into_inner());
            prune(&mut parked, now);
            parked
                .iter()
                .position(|p| p.dir == dir)
                .and_then(|i| parked.remove(i))
        };
        // Only for the same directory: one deleted and made again has another `cur/` inode.
        let same_dir = |p: &Parked| {
            let now_ino = Stamp::of(&dir.join("cur")).ok().flatten().map(|s| s.ino);
            p.state.stamps.cur.map(|s| s.ino) == now_ino
        };
        let (state, derived) = match warm.filter(same_dir) {
            Some(p) => (p.state, DerivedCache::with(&dir, p.derived)),
            None => (State::default(), DerivedCache::new(&dir)),
        };
        MaildirMailbox {
            name,
            derived,
            dir,
            user_root,
            state: Mutex::new(state),
            tx: Arc::new(tx),
            watcher: Mutex::new(None),
            notified: Arc::new(AtomicBool::new(false)),
            registry,
        }
    }

    /// The Maildir directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn uidlist_path(&self) -> PathBuf {
        self.dir.join("dovecot-uidlist")
    }

    fn msg_path(&self, r: &Rec) -> PathBuf {
        self.dir
            .join(if r.in_new { "new" } else { "cur" })
            .join(&*r.fname)
    }

    fn bump(&self) {
        self.tx.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn read_uidlist(&self) -> Result<Option<Uidlist>> {
        let path = self.uidlist_path();
        match fs::read(&path) {
            Ok(bytes) => match Uidlist::parse(&String::from_utf8_lossy(&bytes)) {
                Ok(l) => Ok(Some(l)),
                Err(e) => {
                    tracing::error!("{}: {e}; rebuilding it", path.display());
                    Ok(None)
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(e, "read", &path)),
        }
    }

    fn write_uidlist(&self, list: &Uidlist) -> Result<()> {
        write_atomic(&self.uidlist_path(), list.render().as_bytes())
    }

    /// Re-reads `dovecot-keywords` if it changed.
    fn refresh_keywords(&self, st: &mut State) -> Result<()> {
        let path = self.dir.join("dovecot-keywords");
        let stamp = Stamp::of(&path)?;
        if stamp != st.keywords_stamp || stamp.is_some_and(|s| s.fresh(SystemTime::now())) {
            st.keywords = match fs::read_to_string(&path) {
                Ok(t) => Keywords::parse(&t),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Keywords::default(),
                Err(e) => return Err(io_err(e, "read", &path)),
            };
            st.keywords_stamp = stamp;
        }
        Ok(())
    }

    /// Keyword bits for `names`, adding unknown names to `dovecot-keywords` (under its
    /// dot-lock) when `create`. Names beyond the 26 a file name can hold are dropped.
    fn keyword_bits(&self, st: &mut State, names: &[String], create: bool) -> Result<u32> {
        self.refresh_keywords(st)?;
        let (bits, missing) = st.keywords.bits_of(names);
        // Only IMAP atoms may become keywords (RFC 3501 §9 `flag-keyword`); anything else
        // would break the one-name-a-line file.
        let missing: Vec<&str> = missing
            .into_iter()
            .filter(|n| {
                !n.is_empty()
                    && !n.starts_with('\\')
                    && n.bytes()
                        .all(|b| b.is_ascii_graphic() && !b"(){%*\"]\\".contains(&b))
            })
            .collect();
        if missing.is_empty() || !create {
            return Ok(bits);
        }
        let path = self.dir.join("dovecot-keywords");
        let _lock = DotLock::acquire(&path, LOCK_TIMEOUT)?;
        let mut kw = match fs::read_to_string(&path) {
            Ok(t) => Keywords::parse(&t),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Keywords::default(),
            Err(e) => return Err(io_err(e, "read", &path)),
        };
        for name in &missing {
            if kw.add(name).is_none() {
                tracing::warn!("{}: no room for keyword {name:?}", path.display());
            }
        }
        write_atomic(&path, kw.render().as_bytes())?;
        st.keywords = kw;
        st.keywords_stamp = Stamp::of(&path)?;
        Ok(st.keywords.bits_of(names).0)
    }

    /// Lists `new/` and `cur/` (ignores dot files and names that are not messages).
    fn scan(&self) -> Result<Vec<Found>> {
        let mut out = Vec::new();
        for (sub, in_new) in [("new", true), ("cur", false)] {
            let d = self.dir.join(sub);
            let rd = match fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound && in_new => continue,
                Err(e) => return Err(io_err(e, "readdir", &d)),
            };
            for e in rd {
                let e = e.ctx("readdir", &d)?;
                let Ok(fname) = e.file_name().into_string() else {
                    continue;
                };
                if parse(&fname).is_none() {
                    continue;
                }
                out.push(Found { fname, in_new });
            }
        }
        Ok(out)
    }

    /// Removes `tmp/` files left by crashes long ago, and metadata temp files of writers
    /// that died between write and rename.
    fn clean_tmp(&self) {
        if let Ok(rd) = fs::read_dir(&self.dir) {
            let now = SystemTime::now();
            for e in rd.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                let temp = name.starts_with("dovecot-uidlist.tmp.")
                    || name.starts_with("dovecot-keywords.tmp.");
                let old = e
                    .metadata()
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .is_some_and(|m| m + Duration::from_secs(3600) < now);
                if temp && old {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        let tmp = self.dir.join("tmp");
        let Ok(rd) = fs::read_dir(&tmp) else { return };
        let now = SystemTime::now();
        for e in rd.flatten().take(10_000) {
            let old = e
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .is_some_and(|m| m + TMP_STALE < now);
            if old && e.file_type().is_ok_and(|t| t.is_file()) {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    /// Brings the cache up to date with the disk. With `force`, rescans even if the stamps
    /// did not change (a file we expected was gone).
    fn refresh(&self, st: &mut State, force: bool) -> Result<()> {
        self.refresh_keywords(st)?;
        let now = SystemTime::now();
        let stamps = Stamps {
            new: Stamp::of(&self.dir.join("new"))?,
            cur: Stamp::of(&self.dir.join("cur"))?,
            uidlist: Stamp::of(&self.uidlist_path())?,
        };
        if stamps.cur.is_none() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("mailbox {} has no cur/ ({})", self.name, self.dir.display()),
            ));
        }
        let trusted = st.stamped_at.is_some_and(|at| {
            [st.stamps.new, st.stamps.cur, st.stamps.uidlist]
                .iter()
                .flatten()
                .all(|s| !s.fresh(at))
        });
        // An inotify event since the last refresh (only when someone IDLEs here).
        let notified = self.notified.swap(false, Ordering::AcqRel);
        if st.loaded && !force && stamps == st.stamps {
            if trusted {
                return Ok(());
            }
            // A stamp too fresh to trust may hide a second change in the same clock tick.
            // As Dovecot does (MAILDIR_SYNC_SECS), rescan for it once the tick is surely
            // over, not on every call; an inotify event rescans at once.
            let recheck_due = st
                .stamped_at
                .is_none_or(|at| now >= at + MTIME_SLACK || now < at);
            if !recheck_due && !notified {
                return Ok(());
            }
        }
        let list = self.read_uidlist()?;
        if !st.loaded {
            self.clean_tmp();
            let saved = self
                .registry
                .floors
                .lock()
                .ok()
                .and_then(|f| f.get(&self.dir).copied());
            st.recent_floor = match (&list, saved) {
                (Some(l), Some((v, floor))) if v == l.uid_validity => floor,
                (Some(l), _) => l.next_uid,
                (None, _) => 1,
            };
        }
        let mut found = self.scan()?;
        // A rename by another process during readdir may hide a file: look twice before
        // believing a cached message is gone.
        if st.loaded {
            let names: HashSet<&str> = found
                .iter()
                .map(|f| f.fname.split(':').next().unwrap_or(""))
                .collect();
            if st.recs.iter().any(|r| !names.contains(r.base())) {
                let again = self.scan()?;
                found.extend(again);
            }
        }
        let complete = match &list {
            Some(l) => {
                let known: HashSet<&str> = l.records.iter().map(|r| r.base.as_str()).collect();
                found
                    .iter()
                    .all(|f| !f.in_new && known.contains(f.fname.split(':').next().unwrap_or("")))
            }
            None => false,
        };
        if complete {
            let list = list.unwrap_or_else(|| Uidlist::new(1));
            self.rebuild(st, &list, found);
        } else {
            self.locked_sync(st, found)?;
        }
        st.stamps = stamps;
        st.stamped_at = Some(now);
        st.loaded = true;
        Ok(())
    }

    /// After our own renames into or within `cur/` (under the state lock, the cache already
    /// updated): if the cache was current for `cur/` before them (its stamp equals `before`,
    /// the directory's stamp just before our change), take the new stamp so the
    /// next refresh does not rescan for our own change. The new stamp is too fresh to trust,
    /// so a change another process made in the same moment is still found by the delayed
    /// recheck in [`MaildirMailbox::refresh`].
    fn restamp_cur(&self, st: &mut State, before: Option<Stamp>) -> Result<()> {
        if st.loaded && before.is_some() && st.stamps.cur == before {
            st.stamps.cur = Stamp::of(&self.dir.join("cur"))?;
        }
        Ok(())
    }

    /// Numbers files that have no UID yet and moves `new/` files to `cur/`, under the lock.
    fn locked_sync(&self, st: &mut State, mut found: Vec<Found>) -> Result<()> {
        let _lock = DotLock::acquire(&self.uidlist_path(), LOCK_TIMEOUT)?;
        let mut list = match self.read_uidlist()? {
            Some(l) => l,
            None => Uidlist::new(next_uid_validity(&self.user_root)?),
        };
        let mut dirty = !self.uidlist_path().exists();
        let known: HashSet<String> = list.records.iter().map(|r| r.base.clone()).collect();
        let mut fresh: Vec<usize> = (0..found.len())
            .filter(|&i| !known.contains(found[i].fname.split(':').next().unwrap_or("")))
            .collect();
        fresh.sort_by_cached_key(|&i| {
            let (secs, usecs, name) =
                filename::time_key(found[i].fname.split(':').next().unwrap_or(""));
            (secs, usecs, name.to_string())
        });
        let mut seen_new: HashSet<String> = HashSet::new();
        for i in fresh {
            let f = &found[i];
            let base = f.fname.split(':').next().unwrap_or("").to_string();
            if !seen_new.insert(base.clone()) {
                continue; // same base in new/ and cur/ (a move seen twice)
            }
            let p = parse(&f.fname).expect("scanned names parse");
            let mut ext = String::new();
            if p.vsize.is_none() {
                let path = self
                    .dir
                    .join(if f.in_new { "new" } else { "cur" })
                    .join(&f.fname);
                match compute_vsize(&path) {
                    Ok(v) => ext = format!("W{v}"),
                    Err(e) if e.kind == ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
            }
            list.push(base, ext);
            dirty = true;
        }
        // Move everything still in new/ to cur/ (Dovecot does so unless read-only).
        let mut moved = false;
        for f in found.iter_mut().filter(|f| f.in_new) {
            let base = f.fname.split(':').next().unwrap_or("");
            let info = f.fname.split_once(":2,").map(|(_, i)| i).unwrap_or("");
            let to_name = filename::cur_name(base, info);
            let from = self.dir.join("new").join(&f.fname);
            let to = self.dir.join("cur").join(&to_name);
            match fs::rename(&from, &to) {
                Ok(()) => {
                    f.fname = to_name;
                    f.in_new = false;
                    moved = true;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("{}", io_err(e, "rename", &from)),
            }
        }
        if moved {
            fsync_dir(&self.dir.join("cur"))?;
            fsync_dir(&self.dir.join("new"))?;
        }
        // Drop records of files that are gone (checked by a second scan under the lock).
        let present: HashSet<&str> = found
            .iter()
            .map(|f| f.fname.split(':').next().unwrap_or(""))
            .collect();
        if list
            .records
            .iter()
            .any(|r| !present.contains(r.base.as_str()))
        {
            let again = self.scan()?;
            let present: HashSet<&str> = found
                .iter()
                .chain(again.iter())
                .map(|f| f.fname.split(':').next().unwrap_or(""))
                .collect();
            let before = list.records.len();
            list.records.retain(|r| present.contains(r.base.as_str()));
            dirty |= list.records.len() != before;
            found.extend(again.into_iter().filter(|f| !f.in_new));
        }
        if dirty {
            self.write_uidlist(&list)?;
        }
        self.rebuild(st, &list, found);
        Ok(())
    }

    /// Replaces the cache with `list` ∩ `found`, keeping what is known of unchanged files.
    fn rebuild(&self, st: &mut State, list: &Uidlist, found: Vec<Found>) {
        let mut files: HashMap<String, Found> = HashMap::with_capacity(found.len());
        for f in found {
            let base = f.fname.split(':').next().unwrap_or("").to_string();
            match files.get(&base) {
                Some(old) if !old.in_new => {}
                _ => {
                    files.insert(base, f);
                }
            }
        }
        // Both the cache and the uidlist are in UID order: merge instead of hashing.
        let mut old = std::mem::take(&mut st.recs).into_iter().peekable();
        let same_validity = st.uid_validity == list.uid_validity;
        let mut recs = Vec::with_capacity(list.records.len());
        for r in &list.records {
            let mut prev = None;
            while let Some(o) = old.next_if(|o| o.uid <= r.uid) {
                if o.uid == r.uid && same_validity && o.base() == r.base {
                    prev = Some(o);
                }
            }
            let Some(f) = files.get(r.base.as_str()) else {
                continue;
            };
            if let Some(mut prev) = prev {
                if *prev.fname != *f.fname || prev.in_new != f.in_new {
                    let p = parse(&f.fname).expect("scanned names parse");
                    prev.fname = f.fname.as_str().into();
                    prev.in_new = f.in_new;
                    prev.flags = p.flags;
                    prev.kw = p.keywords;
                }
                recs.push(prev);
                continue;
            }
            let p = parse(&f.fname).expect("scanned names parse");
            let path = self
                .dir
                .join(if f.in_new { "new" } else { "cur" })
                .join(&f.fname);
            let mtime = match fs::metadata(&path) {
                Ok(m) => m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                Err(_) => continue, // vanished since the scan
            };
            let vsize = match p.vsize.or_else(|| r.ext('W').and_then(|v| v.parse().ok())) {
                Some(v) => v,
                None => match compute_vsize(&path) {
                    Ok(v) => v,
                    Err(_) => continue,
                },
            };
            recs.push(Rec {
                uid: r.uid,
                fname: f.fname.as_str().into(),
                in_new: f.in_new,
                flags: p.flags,
                kw: p.keywords,
                vsize,
                mtime,
                recent_taken: false,
            });
        }
        st.recs = recs;
        st.uid_validity = list.uid_validity;
        st.next_uid = list.next_uid;
    }

    fn meta(st: &State, r: &Rec, recent: bool) -> MessageMeta {
        MessageMeta {
            uid: r.uid,
            flags: r.flags,
            keywords: if r.kw == 0 {
                Vec::new()
            } else {
                st.keywords.names_of(r.kw)
            },
            size: r.vsize,
            internal_date: r.mtime,
            recent,
        }
    }

    /// STATUS counts without claiming `\Recent` for anyone.
    pub fn status(&self) -> Result<MailboxStatus> {
        let mut st = lock(&self.state);
        self.refresh(&mut st, false)?;
        Ok(MailboxStatus {
            messages: st.recs.len() as u32,
            recent: st
                .recs
                .iter()
                .filter(|r| r.uid >= st.recent_floor && !r.recent_taken)
                .count() as u32,
            uid_next: st.next_uid,
            uid_validity: st.uid_validity,
            unseen: st
                .recs
                .iter()
                .filter(|r| !r.flags.contains(Flags::SEEN))
                .count() as u32,
        })
    }

    /// Records new files (already in `cur/`) under the uidlist lock; returns their UIDs.
    fn record_new(&self, st: &mut State, entries: Vec<(String, Rec)>) -> Result<Vec<u32>> {
        let lock = DotLock::acquire(&self.uidlist_path(), LOCK_TIMEOUT)?;
        let before = Stamp::of(&self.uidlist_path())?;
        let mut list = match self.read_uidlist()? {
            Some(l) => l,
            None => Uidlist::new(next_uid_validity(&self.user_root)?),
        };
        let cached_max = st.recs.last().map(|r| r.uid).unwrap_or(0);
        let others = list.next_uid > st.next_uid
            || list.uid_validity != st.uid_validity
            || list.records.last().is_some_and(|r| r.uid > cached_max);
        let mut uids = Vec::with_capacity(entries.len());
        let mut recs = Vec::with_capacity(entries.len());
        let recorded: HashMap<&str, u32> = list
            .records
            .iter()
            .map(|r| (r.base.as_str(), r.uid))
            .collect();
        // Another process's sync may have seen our file in cur/ and numbered it already:
        // then that is its UID (never two UIDs for one file).
        let already: Vec<Option<u32>> = entries
            .iter()
            .map(|(base, _)| recorded.get(base.as_str()).copied())
            .collect();
        drop(recorded);
        let mut others = others || already.iter().any(Option::is_some);
        for ((base, mut rec), prior) in entries.into_iter().zip(already) {
            rec.uid = match prior {
                Some(uid) => uid,
                None => list.push(base, String::new()),
            };
            uids.push(rec.uid);
            recs.push(rec);
        }
        if uids
            .iter()
            .any(|u| Some(*u) < st.recs.last().map(|r| r.uid))
        {
            others = true;
        }
        self.write_uidlist(&list)?;
        let after = Stamp::of(&self.uidlist_path())?;
        drop(lock);
        if others || !st.loaded {
            // Someone else numbered messages too: take them all in order.
            self.refresh(st, true)?;
        } else {
            st.recs.extend(recs);
            st.next_uid = list.next_uid;
            if before == st.stamps.uidlist {
                st.stamps.uidlist = after;
            }
        }
        Ok(uids)
    }

    /// Writes `data` into `tmp/` and renames it into `cur/`; returns the base and record.
    fn deliver(
        &self,
        data: &[u8],
        flags: Flags,
        kw: u32,
        internal_date: Option<SystemTime>,
    ) -> Result<(String, Rec)> {
        let (disk, vsize) = to_disk_form(data);
        let base = filename::new_base(disk.len() as u64, vsize);
        let tmp = self.dir.join("tmp").join(&base);
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(file_mode_for(&self.dir))
                .open(&tmp)
                .ctx("create", &tmp)?;
            fix_mode(&f, file_mode_for(&self.dir), &tmp)?;
            f.write_all(&disk).ctx("write", &tmp)?;
            if let Some(t) = internal_date {
                f.set_modified(t).ctx("utime", &tmp)?;
            }
            f.sync_all().ctx("fsync", &tmp)?;
            let mtime = f
                .metadata()
                .ctx("fstat", &tmp)?
                .modified()
                .unwrap_or(SystemTime::UNIX_EPOCH);
            Ok(mtime)
        })();
        let mtime = match result {
            Ok(m) => m,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let fname = filename::cur_name(&base, &filename::info(flags, kw, ""));
        let dest = self.dir.join("cur").join(&fname);
        if let Err(e) = fs::rename(&tmp, &dest) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(e, "rename", &dest));
        }
        fsync_dir(&self.dir.join("cur"))?;
        Ok((
            base,
            Rec {
                uid: 0,
                fname: fname.into(),
                in_new: false,
                flags,
                kw,
                vsize,
                mtime,
                recent_taken: false,
            },
        ))
    }

    /// Links (or copies) source messages into this mailbox and numbers them.
    fn import(&self, items: &[Import]) -> Result<Vec<Option<u32>>> {
        let mut st = lock(&self.state);
        if !st.loaded {
            self.refresh(&mut st, false)?;
        }
        let mut entries = Vec::new();
        let mut slots = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let kw = self.keyword_bits(&mut st, &it.keywords, true)?;
            let size = match fs::metadata(&it.path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(e, "stat", &it.path)),
            };
            let base = filename::new_base(size, it.vsize);
            let tmp = self.dir.join("tmp").join(&base);
            match fs::hard_link(&it.path, &tmp) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(_) => {
                    // Other file system or no link permission: copy, keep INTERNALDATE.
                    let copied = fs::copy(&it.path, &tmp).and_then(|_| {
                        let f = OpenOptions::new().write(true).open(&tmp)?;
                        f.set_modified(it.mtime)?;
                        f.sync_all()
                    });
                    if let Err(e) = copied {
                        let _ = fs::remove_file(&tmp);
                        if e.kind() == io::ErrorKind::NotFound {
                            continue;
                        }
                        return Err(io_err(e, "copy", &it.path));
                    }
                }
            }
            let fname = filename::cur_name(&base, &filename::info(it.flags, kw, ""));
            let dest = self.dir.join("cur").join(&fname);
            if let Err(e) = fs::rename(&tmp, &dest) {
                let _ = fs::remove_file(&tmp);
                return Err(io_err(e, "rename", &dest));
            }
            entries.push((
                base,
                Rec {
                    uid: 0,
                    fname: fname.into(),
                    in_new: false,
                    flags: it.flags,
                    kw,
                    vsize: it.vsize,
                    mtime: it.mtime,
                    recent_taken: false,
                },
            ));
            slots.push(i);
        }
        let mut out = vec![None; items.len()];
        if entries.is_empty() {
            return Ok(out);
        }
        fsync_dir(&self.dir.join("cur"))?;
        let uids = self.record_new(&mut st, entries)?;
        for (slot, uid) in slots.into_iter().zip(uids) {
            out[slot] = Some(uid);
        }
        drop(st);
        self.bump();
        Ok(out)
    }

    /// The messages to copy, with their current paths.
    fn exports(&self, uids: &[u32], force: bool) -> Result<Vec<Import>> {
        let mut st = lock(&self.state);
        self.refresh(&mut st, force)?;
        Ok(uids
            .iter()
            .filter_map(|&uid| st.find(uid))
            .map(|i| {
                let r = &st.recs[i];
                Import {
                    src_uid: r.uid,
                    path: self.msg_path(r),
                    flags: r.flags,
                    keywords: st.keywords.names_of(r.kw),
                    vsize: r.vsize,
                    mtime: r.mtime,
                }
            })
            .collect())
    }

    /// Unlinks the chosen messages and drops them from the uidlist; returns their UIDs.
    fn delete_where(&self, pick: impl Fn(&Rec) -> bool) -> Result<Vec<u32>> {
        let mut st = lock(&self.state);
        self.refresh(&mut st, false)?;
        let mut gone: Vec<(u32, String)> = Vec::new();
        let mut retried = false;
        let mut i = 0;
        while i < st.recs.len() {
            if !pick(&st.recs[i]) {
                i += 1;
                continue;
            }
            let path = self.msg_path(&st.recs[i]);
            match fs::remove_file(&path) {
                Ok(()) => gone.push((st.recs[i].uid, st.recs[i].base().to_string())),
                Err(e) if e.kind() == io::ErrorKind::NotFound && !retried => {
                    // Renamed by someone else (flag change): rescan once and try again.
                    retried = true;
                    let uid = st.recs[i].uid;
                    self.refresh(&mut st, true)?;
                    let done: HashSet<u32> = gone.iter().map(|g| g.0).collect();
                    st.recs.retain(|r| !done.contains(&r.uid));
                    i = st.recs.partition_point(|r| r.uid < uid);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(e, "unlink", &path)),
            }
            i += 1;
        }
        if gone.is_empty() {
            return Ok(Vec::new());
        }
        fsync_dir(&self.dir.join("cur"))?;
        {
            let _lock = DotLock::acquire(&self.uidlist_path(), LOCK_TIMEOUT)?;
            if let Some(mut list) = self.read_uidlist()? {
                let bases: HashSet<&str> = gone.iter().map(|g| g.1.as_str()).collect();
                list.records.retain(|r| !bases.contains(r.base.as_str()));
                self.write_uidlist(&list)?;
            }
        }
        let uids: HashSet<u32> = gone.iter().map(|g| g.0).collect();
        st.recs.retain(|r| !uids.contains(&r.uid));
        drop(st);
        self.bump();
        let mut out: Vec<u32> = uids.into_iter().collect();
        out.sort_unstable();
        self.derived.remove(&out);
        Ok(out)
    }
}

impl Mailbox for MaildirMailbox {
    fn name(&self) -> &str {
        &self.name
    }

    fn sync(&self, view: &mut View) -> Result<Changes> {
        let mut st = lock(&self.state);
        self.refresh(&mut st, false)?;
        let mut changes = Changes::default();
        if view.uid_validity != 0 && view.uid_validity != st.uid_validity {
            changes.expunged = vec![1; view.messages.len()];
            view.messages.clear();
        }
        let st = &mut *st;
        let old = std::mem::take(&mut view.messages);
        let mut kept = Vec::with_capacity(st.recs.len());
        let mut j = 0;
        for m in old {
            while j < st.recs.len() && st.recs[j].uid < m.uid {
                j += 1; // a UID below what the view has: it can no longer be announced
            }
            if j < st.recs.len() && st.recs[j].uid == m.uid {
                let r = &st.recs[j];
                let keywords = if r.kw == 0 {
                    Vec::new()
                } else {
                    st.keywords.names_of(r.kw)
                };
                let mut m = m;
                if m.flags != r.flags || m.keywords != keywords {
                    m.flags = r.flags;
                    m.keywords = keywords;
                    changes.flags_changed.push(m.uid);
                }
                kept.push(m);
                j += 1;
            } else {
                changes.expunged.push(kept.len() as u32 + 1);
            }
        }
        let last = kept.last().map(|m| m.uid).unwrap_or(0);
        let start = st.recs.partition_point(|r| r.uid <= last);
        for idx in start..st.recs.len() {
            let eligible = st.recs[idx].uid >= st.recent_floor && !st.recs[idx].recent_taken;
            if eligible {
                st.recs[idx].recent_taken = true;
            }
            kept.push(Self::meta(st, &st.recs[idx], eligible));
            changes.added += 1;
        }
        view.messages = kept;
        view.uid_validity = st.uid_validity;
        view.uid_next = st.next_uid;
        Ok(changes)
    }

    fn read(&self, uid: u32) -> Result<Arc<[u8]>> {
        for attempt in 0..2 {
            let (path, vsize) = {
                let mut st = lock(&self.state);
                // A UID the cache knows is read from its cached path without statting the
                // folder; if that file was renamed or removed meanwhile, the second attempt
                // rescans.
                let known = if attempt == 0 && st.loaded {
                    st.find(uid)
                } else {
                    None
                };
                if known.is_none() {
                    self.refresh(&mut st, attempt > 0)?;
                }
                let Some(i) = known.or_else(|| st.find(uid)) else {
                    return Err(Error::new(
                        ErrorKind::NotFound,
                        format!("UID {uid} not in {}", self.name),
                    ));
                };
                (self.msg_path(&st.recs[i]), st.recs[i].vsize)
            };
            match fs::read(&path) {
                Ok(raw) => {
                    let data = to_crlf(&raw);
                    if data.len() as u64 != vsize {
                        tracing::warn!(
                            "{}: size {} differs from recorded {vsize}",
                            path.display(),
                            data.len()
                        );
                    }
                    return Ok(data.into());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempt == 0 => continue,
                Err(e) => return Err(io_err(e, "read", &path)),
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    fn store_flags(
        &self,
        uids: &[u32],
        op: FlagOp,
        flags: Flags,
        keywords: &[String],
    ) -> Result<Vec<MessageMeta>> {
        let mut st = lock(&self.state);
        self.refresh(&mut st, false)?;
        let bits = self.keyword_bits(&mut st, keywords, op != FlagOp::Remove)?;
        let cur_before = st.stamps.cur;
        let mut out = Vec::with_capacity(uids.len());
        let mut changed = false;
        let mut retried = false;
        for &uid in uids {
            let mut tries = 0;
            loop {
                tries += 1;
                let Some(i) = st.find(uid) else { break };
                let r = &st.recs[i];
                let (nf, nk) = match op {
                    FlagOp::Replace => (flags, bits),
                    FlagOp::Add => (r.flags.union(flags), r.kw | bits),
                    FlagOp::Remove => (r.flags.minus(flags), r.kw & !bits),
                };
                if nf == r.flags && nk == r.kw {
                    out.push(Self::meta(&st, r, false));
                    break;
                }
                let p = parse(&r.fname).expect("cached names parse");
                let to_name = filename::cur_name(p.base, &filename::info(nf, nk, &p.other));
                let from = self.msg_path(r);
                let to = self.dir.join("cur").join(&to_name);
                match fs::rename(&from, &to) {
                    Ok(()) => {
                        let r = &mut st.recs[i];
                        r.fname = to_name.into();
                        r.in_new = false;
                        r.flags = nf;
                        r.kw = nk;
                        changed = true;
                        out.push(Self::meta(&st, &st.recs[i], false));
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound && !retried && tries == 1 => {
                        retried = true;
                        self.refresh(&mut st, true)?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) => return Err(io_err(e, "rename", &from)),
                }
            }
        }
        if changed {
            // Durable before the command reports success (SPEC §7).
            fsync_dir(&self.dir.join("cur"))?;
            self.restamp_cur(&mut st, cur_before)?;
        }
        drop(st);
        if changed {
            self.bump();
        }
        Ok(out)
    }

    fn append(
        &self,
        data: &[u8],
        flags: Flags,
        keywords: &[String],
        internal_date: Option<SystemTime>,
    ) -> Result<u32> {
        let mut st = lock(&self.state);
        // No rescan first: `record_new` notices other writers from the uidlist it re-reads
        // under the lock, so a run of APPENDs does not readdir a big mailbox each time.
        if !st.loaded {
            self.refresh(&mut st, false)?;
        }
        let kw = self.keyword_bits(&mut st, keywords, true)?;
        let cur_before = Stamp::of(&self.dir.join("cur"))?;
        let entry = self.deliver(data, flags, kw, internal_date)?;
        let uids = self.record_new(&mut st, vec![entry])?;
        self.restamp_cur(&mut st, cur_before)?;
        drop(st);
        self.bump();
        Ok(uids[0])
    }

    fn copy_to(&self, uids: &[u32], dest: &dyn Mailbox) -> Result<Vec<(u32, u32)>> {
        let dest = dest
            .as_any()
            .downcast_ref::<MaildirMailbox>()
            .ok_or_else(|| Error::new(ErrorKind::Internal, "copy to a non-Maildir mailbox"))?;
        let mut pairs = Vec::new();
        let items = self.exports(uids, false)?;
        let got = dest.import(&items)?;
        let mut missed = Vec::new();
        for (it, uid) in items.iter().zip(got) {
            match uid {
                Some(u) => pairs.push((it.src_uid, u)),
                None => missed.push(it.src_uid),
            }
        }
        if !missed.is_empty() {
            // Renamed under us by a flag change elsewhere: look again once.
            let items = self.exports(&missed, true)?;
            let got = dest.import(&items)?;
            pairs.extend(
                items
                    .iter()
                    .zip(got)
                    .filter_map(|(it, u)| u.map(|u| (it.src_uid, u))),
            );
        }
        Ok(pairs)
    }

    fn move_to(&self, uids: &[u32], dest: &dyn Mailbox) -> Result<Vec<(u32, u32)>> {
        let pairs = self.copy_to(uids, dest)?;
        let moved: HashSet<u32> = pairs.iter().map(|p| p.0).collect();
        self.delete_where(|r| moved.contains(&r.uid))?;
        Ok(pairs)
    }

    fn expunge(&self, uids: Option<&[u32]>) -> Result<Vec<u32>> {
        let only: Option<HashSet<u32>> = uids.map(|u| u.iter().copied().collect());
        self.delete_where(|r| {
            r.flags.contains(Flags::DELETED) && only.as_ref().is_none_or(|o| o.contains(&r.uid))
        })
    }

    fn remove(&self, uids: &[u32]) -> Result<()> {
        let set: HashSet<u32> = uids.iter().copied().collect();
        self.delete_where(|r| set.contains(&r.uid)).map(|_| ())
    }

    fn derived(&self, uid: u32, field: Derived) -> Option<Arc<[u8]>> {
        let st = lock(&self.state);
        if !st.loaded {
            return None;
        }
        let uid_validity = st.uid_validity;
        if let Ok(hit) = self.derived.get_loaded(uid_validity, uid, field) {
            return hit;
        }
        let live: Vec<u32> = st.recs.iter().map(|r| r.uid).collect();
        drop(st);
        self.derived.load(uid_validity, &live);
        self.derived.get(uid, field)
    }

    fn set_derived(&self, entries: Vec<(u32, Derived, Arc<[u8]>)>) {
        let uid_validity = {
            let st = lock(&self.state);
            if !st.loaded {
                return;
            }
            st.uid_validity
        };
        self.derived.put(uid_validity, entries);
    }

    fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        let mut w = self.watcher.lock().unwrap_or_else(|p| p.into_inner());
        if w.is_none() {
            let tx = self.tx.clone();
            let notified = self.notified.clone();
            let made = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                if res.is_ok() {
                    notified.store(true, Ordering::Release);
                    tx.send_modify(|v| *v = v.wrapping_add(1));
                }
            });
            match made {
                Ok(mut watcher) => {
                    use notify::Watcher as _;
                    for sub in ["new", "cur"] {
                        let p = self.dir.join(sub);
                        if let Err(e) = watcher.watch(&p, notify::RecursiveMode::NonRecursive) {
                            tracing::warn!("inotify on {}: {e}", p.display());
                        }
                    }
                    *w = Some(watcher);
                }
                Err(e) => tracing::warn!("inotify for {}: {e}", self.dir.display()),
            }
        }
        self.tx.subscribe()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Creates a new, empty Maildir++ folder with its uidlist (fresh UIDVALIDITY).
pub(super) fn create_folder(dir: &Path, user_root: &Path) -> Result<()> {
    let mode = dir_mode_for(user_root);
    fs::DirBuilder::new()
        .mode(mode)
        .create(dir)
        .map_err(|e| io_err(e, "mkdir", dir))?;
    if mode & 0o077 != 0 {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(mode))
            .map_err(|e| io_err(e, "chmod", dir))?;
    }
    create_maildir(dir, mode)?;
    File::create(dir.join("maildirfolder")).ctx("create", &dir.join("maildirfolder"))?;
    let list = Uidlist::new(next_uid_validity(user_root)?);
    write_atomic(&dir.join("dovecot-uidlist"), list.render().as_bytes())?;
    if let Some(parent) = dir.parent() {
        fsync_dir(parent)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn uid_validity_is_unique_per_user() {
        let dir = tempfile::tempdir().unwrap();
        let a = next_uid_validity(dir.path()).unwrap();
        let b = next_uid_validity(dir.path()).unwrap();
        assert!(b > a);
        let text = fs::read_to_string(dir.path().join("dovecot-uidvalidity")).unwrap();
        assert_eq!(u32::from_str_radix(&text, 16).unwrap(), b);
    }
}
