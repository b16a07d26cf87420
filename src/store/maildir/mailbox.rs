//! One Maildir folder shared by every session of this process ([`MaildirMailbox`]).
//!
//! The mailbox keeps a compact cache (UID, file name, flags, keyword bits, size, mtime) built
//! from `dovecot-uidlist` and a readdir of `new/` + `cur/`, refreshed only when the stamps
//! (mtime, size, inode) of those directories or of the uidlist change — message bodies are
//! never read to sync. Files without a uidlist record (MTA deliveries into `new/`, appends
//! interrupted by a crash) get fresh UIDs under the uidlist dot-lock, in delivery order, and
//! `new/` files move to `cur/` with an empty `:2,` info, as Dovecot does.
//!
//! Crash safety (ARCHITECTURE.md, "Mail store"): append writes `tmp/`, fsyncs, renames into
//! `cur/`, fsyncs the directory, then records the UID (dot-lock, re-read, write temp, fsync,
//! rename) before returning. A crash between those steps leaves either junk in `tmp/`
//! (ignored, cleaned after 36 h) or a file in `cur/` without a record, which the next sync
//! numbers; `N` in the uidlist only grows, so UIDs are never reused. A save or copy that is
//! refused (full disk, lock timeout) removes its files instead (`save.rs`). Flag changes rename
//! within `cur/`; expunge unlinks then rewrites the uidlist.
//!
//! `\Recent` (RFC 3501 §2.3.2): messages whose UID is at or above the mailbox's "recent floor"
//! (the first UID no session of any process has taken, kept in `mailserver.recent`:
//! `recent.rs`) are recent in exactly the first view that syncs them. Metadata returned by `store_flags`
//! says `recent: false`: the session keeps the `\Recent` it got from its own view.
//!
//! Limits: at most 26 keywords per mailbox (the letters a Maildir name can carry; more are
//! dropped with a warning, as Dovecot keeps those only in its index); a message that another
//! process renames while our readdir runs is looked for twice before it counts as expunged.
//!
//! The code is split by concern, as Dovecot splits `src/lib-storage/index/maildir/`: this file
//! holds the handle and its cache types, the process-wide [`Registry`] of handles (with the
//! `Parked` state a dropped one leaves there), keywords, STATUS, reads, flag changes, expunge
//! and the [`Mailbox`] glue; `sync.rs` the scan and the view sync (`maildir-sync.c`), `save.rs`
//! APPEND (`maildir-save.c`), `copy.rs` COPY and MOVE (`maildir-copy.c`), `crlf.rs` line
//! endings, `parked.rs` what a dropped handle leaves for the next one, `own_renames.rs` which
//! watcher events are another program's changes, and `modseq.rs` the
//! RFC 7162 mod-sequences every change of the cache is given (`sync.rs` applies them). Those files add
//! `impl MaildirMailbox` blocks and import the types here; this file imports none of them but
//! `crlf.rs` and `own_renames.rs` (a leaf).

use super::cache::{self, DerivedCache};
use super::crlf::to_crlf;
use super::dotlock::{DotLock, LOCK_TIMEOUT};
use super::filename::{self, parse};
use super::fsutil::{
    create_maildir, dir_mode_for, fix_dir_mode, fsync_dir, io_err, write_atomic, IoCtx,
};
use super::keywords::Keywords;
use super::mutex::lock;
use super::own_renames::{self, OwnRenames};
use super::uidlist::Uidlist;
use crate::store::{
    Changes, Derived, Error, ErrorKind, FlagOp, Flags, Mailbox, MailboxStatus, MessageMeta,
    NewMessage, Result, View,
};
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

/// Directory mtimes are coarse: a change this close to our stat may share its mtime.
pub(super) const MTIME_SLACK: Duration = Duration::from_secs(1);

/// What identifies a version of a file or directory without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    mtime: SystemTime,
    size: u64,
    pub(super) ino: u64,
}

impl Stamp {
    pub(super) fn of(path: &Path) -> Result<Option<Stamp>> {
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
    pub(super) fn fresh(&self, taken_at: SystemTime) -> bool {
        self.mtime + MTIME_SLACK > taken_at
    }
}

/// The stamps the cache was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Stamps {
    pub(super) new: Option<Stamp>,
    pub(super) cur: Option<Stamp>,
    pub(super) uidlist: Option<Stamp>,
}

/// One cached message.
#[derive(Debug, Clone)]
pub(super) struct Rec {
    pub(super) uid: u32,
    /// Full file name (base plus `:2,` info) inside `new/` or `cur/`.
    pub(super) fname: Box<str>,
    /// Still in `new/` (moving it to `cur/` failed, e.g. read-only mailbox).
    pub(super) in_new: bool,
    pub(super) flags: Flags,
    /// Keyword bits (`dovecot-keywords` indexes).
    pub(super) kw: u32,
    /// Size with CRLF line endings (RFC822.SIZE).
    pub(super) vsize: u64,
    /// INTERNALDATE.
    pub(super) mtime: SystemTime,
    /// A view of this process already got this message as `\Recent`.
    pub(super) recent_taken: bool,
    /// Its mod-sequence (RFC 7162), set by `modseq.rs` after every change of the cache.
    pub(super) modseq: u64,
}

impl Rec {
    pub(super) fn base(&self) -> &str {
        self.fname.split(':').next().unwrap_or(&self.fname)
    }
}

/// Mutable state, behind the mailbox mutex.
#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) loaded: bool,
    pub(super) uid_validity: u32,
    pub(super) next_uid: u32,
    /// Messages in UID order.
    pub(super) recs: Vec<Rec>,
    pub(super) keywords: Keywords,
    pub(super) keywords_stamp: Option<Stamp>,
    pub(super) stamps: Stamps,
    /// When `stamps` were taken.
    pub(super) stamped_at: Option<SystemTime>,
    /// UIDs at or above this are `\Recent` until a view claims them.
    pub(super) recent_floor: u32,
    /// Mod-sequences and the expunge history (`mailserver.modseq`, `modseq.rs`).
    pub(super) modseqs: super::modseq::Modseqs,
}

impl State {
    pub(super) fn find(&self, uid: u32) -> Option<usize> {
        self.recs.binary_search_by_key(&uid, |r| r.uid).ok()
    }
}

/// One Maildir folder; see the module docs.
pub struct MaildirMailbox {
    /// The IMAP name.
    pub(super) name: String,
    /// The Maildir (holds `cur new tmp` and the Dovecot metadata files).
    pub(super) dir: PathBuf,
    /// The user's root, where `dovecot-uidvalidity` lives.
    pub(super) user_root: PathBuf,
    pub(super) state: Mutex<State>,
    /// Bumped by local writes and by the inotify watcher.
    pub(super) tx: Arc<tokio::sync::watch::Sender<u64>>,
    /// The one inotify watcher for all sessions, made on the first `changes()`.
    pub(super) watcher: Mutex<Option<super::watch::FolderWatch>>,
    /// Set by the watcher: the next refresh rescans even if the stamps look unchanged.
    pub(super) notified: Arc<AtomicBool>,
    /// Our own renames in `cur/` whose events the watcher is still to see (`own_renames.rs`).
    pub(super) own_renames: Arc<OwnRenames>,
    /// Where the recent floor is kept when this handle goes away.
    pub(super) registry: Arc<Registry>,
    /// ENVELOPE/BODYSTRUCTURE/BODY by UID, persisted in `mailserver.cache`.
    pub(super) derived: DerivedCache,
    /// Group commit of `new/`'s fsync for concurrent deliveries (`dirsync.rs`).
    pub(super) new_sync: super::dirsync::DirSync,
}

impl std::fmt::Debug for MaildirMailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaildirMailbox")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .finish()
    }
}

/// Asked at each user open: the file that must exist first, if any (the daemon's reads the
/// live config, so a reload that turns the requirement on applies at the next login).
#[derive(Clone)]
pub struct MarkerRule(pub Arc<dyn Fn() -> Option<PathBuf> + Send + Sync>);

impl std::fmt::Debug for MarkerRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MarkerRule")
    }
}

/// Process-wide shared handles.
#[derive(Debug, Default)]
pub struct Registry {
    /// Open mailboxes by Maildir path: every session gets the same one.
    pub(super) mailboxes: Mutex<HashMap<PathBuf, Weak<MaildirMailbox>>>,
    /// Per Maildir: (UIDVALIDITY, recent floor) left by a dropped handle, so `\Recent` is not
    /// handed out twice when a mailbox is closed and opened again.
    pub(super) floors: Mutex<HashMap<PathBuf, (u32, u32)>>,
    /// Serialises `subscriptions` rewrites within this process.
    pub(super) subscriptions: Mutex<()>,
    /// What dropped handles left for the next handle of their folder ([`Parked`]).
    pub(super) parked: Mutex<std::collections::VecDeque<Parked>>,
    /// Where users' quota limits come from (`MaildirStore::set_quota_limits`).
    pub(super) quota: std::sync::RwLock<Option<Arc<dyn crate::store::quota::QuotaLimits>>>,
    /// No inotify watchers (`MaildirStore::set_watch`): the tree is shared with other hosts,
    /// whose writes inotify does not see; IDLE re-checks on its timer instead.
    pub(super) no_watch: AtomicBool,
    /// Which file must exist before a user's tree is touched (`MaildirStore::require_marker`).
    pub(super) marker: std::sync::RwLock<Option<MarkerRule>>,
    /// Told of every write of this process (`MaildirStore::on_change`): the cluster's change
    /// events.
    pub(super) on_change: std::sync::RwLock<Option<ChangeHook>>,
    /// Whether a dropped handle of a user's folder may park its caches
    /// (`MaildirStore::park_rule`): not for users another node owns.
    pub(super) may_park: std::sync::RwLock<Option<UserRule>>,
}

/// The function behind a [`ChangeHook`]: (user, IMAP mailbox name).
pub type ChangeFn = dyn Fn(&str, &str) + Send + Sync;
/// Called with (user, IMAP mailbox name) after each write (`MaildirStore::on_change`).
#[derive(Clone)]
pub struct ChangeHook(pub Arc<ChangeFn>);
/// A yes/no question about a user (`MaildirStore::park_rule`).
#[derive(Clone)]
pub struct UserRule(pub Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl std::fmt::Debug for ChangeHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChangeHook")
    }
}

impl std::fmt::Debug for UserRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserRule")
    }
}

impl Registry {
    /// Tells the change hook (`MaildirStore::on_change`), if any, that the folder `name` of
    /// the user whose tree is `user_root` changed here.
    pub(super) fn changed(&self, user_root: &Path, name: &str) {
        let hook = self.on_change.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let (Some(hook), Some(user)) = (hook, user_root.file_name()) {
            (hook.0)(&user.to_string_lossy(), name);
        }
    }

    /// The quota limits of the user whose tree is `user_root`.
    pub(super) fn limits(&self, user_root: &Path) -> crate::store::quota::Limits {
        let q = self.quota.read().unwrap_or_else(|p| p.into_inner());
        match (q.as_ref(), user_root.file_name()) {
            (Some(q), Some(user)) => q.limits(&user.to_string_lossy()),
            _ => Default::default(),
        }
    }

    /// What a save into `mailbox` is checked against: the user's limits (those
    /// `maildirsize` records), the limits for that mailbox, and the delivery grace in octets.
    pub(super) fn save_limits(&self, user_root: &Path, mailbox: &str) -> SaveLimits {
        let q = self.quota.read().unwrap_or_else(|p| p.into_inner());
        match (q.as_ref(), user_root.file_name()) {
            (Some(q), Some(user)) => {
                let (user, here, grace) = q.save_limits(&user.to_string_lossy(), mailbox);
                SaveLimits { user, here, grace }
            }
            _ => SaveLimits::default(),
        }
    }
}

/// [`Registry::save_limits`].
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct SaveLimits {
    pub(super) user: crate::store::quota::Limits,
    pub(super) here: crate::store::quota::Limits,
    pub(super) grace: u64,
}

/// What a dropped handle leaves in the registry so the next handle of its folder starts
/// warm: its sync cache (validated against the disk by the usual stamps before use) and its
/// derived-data cache. Kept at most [`PARK_FOR`](super::parked::PARK_FOR), at most
/// [`PARK_MAX`](super::parked::PARK_MAX) folders.
pub(super) struct Parked {
    pub(super) dir: PathBuf,
    pub(super) at: Instant,
    pub(super) state: State,
    pub(super) derived: cache::Inner,
}

impl std::fmt::Debug for Parked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parked").field("dir", &self.dir).finish()
    }
}

/// Next UIDVALIDITY for a new mailbox of this user: the current time, or one more than the
/// last one handed out (Dovecot's `dovecot-uidvalidity` file, hex), so two mailboxes made in
/// the same second still differ.
pub(super) fn next_uid_validity(user_root: &Path) -> Result<u32> {
    static GUARD: Mutex<()> = Mutex::new(());
    let _g = lock(&GUARD);
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
        let (state, derived) = Self::take_parked(&registry, &dir);
        MaildirMailbox {
            name,
            derived,
            dir,
            user_root,
            state: Mutex::new(state),
            tx: Arc::new(tx),
            watcher: Mutex::new(None),
            notified: Arc::new(AtomicBool::new(false)),
            own_renames: Arc::default(),
            registry,
            new_sync: Default::default(),
        }
    }

    pub(super) fn uidlist_path(&self) -> PathBuf {
        self.dir.join("dovecot-uidlist")
    }

    /// The file of `uid` and its recorded size. A UID the cache knows is taken from its
    /// cached path without statting the folder; on the second `attempt` (the file was
    /// renamed or removed meanwhile) the folder is rescanned first.
    fn locate(&self, uid: u32, attempt: u32) -> Result<(PathBuf, u64)> {
        let mut st = lock(&self.state);
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
        Ok((self.msg_path(&st.recs[i]), st.recs[i].vsize))
    }

    pub(super) fn msg_path(&self, r: &Rec) -> PathBuf {
        self.dir
            .join(if r.in_new { "new" } else { "cur" })
            .join(&*r.fname)
    }

    /// A write of this process changed the folder: wake its sessions, and tell the change
    /// hook (the cluster's `<prefix>.changed` events; the watcher's wake-ups do not come here).
    pub(super) fn bump(&self) {
        self.tx.send_modify(|v| *v = v.wrapping_add(1));
        self.registry.changed(&self.user_root, &self.name);
    }

    /// Another node changed the folder: the next refresh rescans whatever the stamps say (a
    /// shared file system's attribute cache may hide the change for a while) and every
    /// session waiting on it wakes.
    pub(super) fn poke(&self) {
        self.notified.store(true, Ordering::Release);
        self.tx.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub(super) fn read_uidlist(&self) -> Result<Option<Uidlist>> {
        let path = self.uidlist_path();
        match super::fsutil::read_file(&path) {
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

    pub(super) fn write_uidlist(&self, list: &Uidlist) -> Result<()> {
        write_atomic(&self.uidlist_path(), list.render().as_bytes())
    }

    fn keywords_path(&self) -> PathBuf {
        self.dir.join("dovecot-keywords")
    }

    /// `dovecot-keywords` as it is on disk (empty when missing).
    fn read_keywords(&self) -> Result<Keywords> {
        let path = self.keywords_path();
        match super::fsutil::retry_estale(|| fs::read_to_string(&path)) {
            Ok(t) => Ok(Keywords::parse(&t)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Keywords::default()),
            Err(e) => Err(io_err(e, "read", &path)),
        }
    }

    /// Re-reads `dovecot-keywords` if it changed.
    pub(super) fn refresh_keywords(&self, st: &mut State) -> Result<()> {
        let path = self.keywords_path();
        let stamp = Stamp::of(&path)?;
        if stamp != st.keywords_stamp || stamp.is_some_and(|s| s.fresh(SystemTime::now())) {
            st.keywords = self.read_keywords()?;
            st.keywords_stamp = stamp;
        }
        Ok(())
    }

    /// Keyword bits for `names`, adding unknown names to `dovecot-keywords` (under its
    /// dot-lock) when `create`. A name beyond the 26 a file name can hold fails the whole
    /// call with [`ErrorKind::Limit`] and adds nothing.
    pub(super) fn keyword_bits(
        &self,
        st: &mut State,
        names: &[String],
        create: bool,
    ) -> Result<u32> {
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
        let path = self.keywords_path();
        let _lock = DotLock::acquire(&path, LOCK_TIMEOUT)?;
        let mut kw = self.read_keywords()?;
        for name in &missing {
            if kw.add(name).is_none() {
                // Refused whole, the file left as it was: never accept a keyword and drop it.
                return Err(Error::new(
                    ErrorKind::Limit,
                    format!("{}: no room for keyword {name:?}", path.display()),
                ));
            }
        }
        write_atomic(&path, kw.render().as_bytes())?;
        st.keywords = kw;
        st.keywords_stamp = Stamp::of(&path)?;
        Ok(st.keywords.bits_of(names).0)
    }

    pub(super) fn meta(st: &State, r: &Rec, recent: bool) -> MessageMeta {
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
            modseq: r.modseq,
        }
    }

    /// STATUS counts without claiming `\Recent` for anyone.
    pub fn status(&self) -> Result<MailboxStatus> {
        let mut st = lock(&self.state);
        self.refresh(&mut st, false)?;
        // What other processes took since (recent.rs).
        if let Some(f) = super::recent::read_floor(&self.dir, st.uid_validity) {
            st.recent_floor = st.recent_floor.max(f);
        }
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
            size: st.recs.iter().map(|r| r.vsize).sum(),
            deleted: st
                .recs
                .iter()
                .filter(|r| r.flags.contains(Flags::DELETED))
                .count() as u32,
            highest_modseq: st.modseqs.highest,
        })
    }

    /// `force-resync` (as `doveadm force-resync`): forgets the derived cache in memory (its
    /// file is already gone) and rescans `new/`, `cur/` and the uidlist whatever the stamps
    /// say. UIDs and UIDVALIDITY stay those of `dovecot-uidlist`; files it does not list get
    /// new UIDs under its lock, as at any sync.
    pub fn force_resync(&self) -> Result<()> {
        self.derived.reset();
        let mut st = lock(&self.state);
        self.refresh(&mut st, true)
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
        let freed: u64 = gone
            .iter()
            .filter_map(|g| parse(&g.1).and_then(|p| p.size))
            .sum();
        self.quota_changed(-(freed as i64), -(gone.len() as i64));
        let uids: HashSet<u32> = gone.iter().map(|g| g.0).collect();
        st.recs.retain(|r| !uids.contains(&r.uid));
        // Logged before the expunge is reported (modseq.rs).
        let logged = self.update_modseqs(&mut st);
        drop(st);
        self.bump();
        logged?;
        self.bump();
        let mut out: Vec<u32> = uids.into_iter().collect();
        out.sort_unstable();
        self.derived.remove(&out);
        Ok(out)
    }
}

impl MaildirMailbox {
    /// Refuses (`OverQuota`) adding `count` messages of `bytes` octets past the user's limits.
    /// (The limits are this mailbox's: the user's rules for it apply.)
    pub(super) fn quota_check(&self, bytes: u64, count: u64) -> Result<()> {
        let l = self.registry.save_limits(&self.user_root, &self.name);
        super::quota::check(&self.user_root, l.user, l.here, bytes, count)
    }

    /// [`Self::quota_check`] for one delivered message (LMTP, `deliver`): the user's
    /// `quota_grace` applies.
    pub(super) fn quota_check_delivery(&self, bytes: u64) -> Result<()> {
        let l = self.registry.save_limits(&self.user_root, &self.name);
        super::quota::check_delivery(&self.user_root, l.user, l.here, l.grace, bytes)
    }

    /// Records a committed change in `maildirsize`; best effort (a failure is logged: the
    /// next recalculation corrects it).
    pub(super) fn quota_changed(&self, bytes: i64, count: i64) {
        let limits = self.registry.limits(&self.user_root);
        if let Err(e) = super::quota::changed(&self.user_root, limits, bytes, count) {
            tracing::warn!("quota: {e}");
        }
    }

    /// After a MOVE whose expunge failed (some sources may be gone already): removes the
    /// copies of the sources still here, so a retry neither duplicates nor loses them. When
    /// what is still here cannot be told, the copies stay: never lose mail.
    fn undo_move(&self, pairs: &[(u32, u32)], dest: &dyn Mailbox) {
        let here: Result<HashSet<u32>> = {
            let mut st = lock(&self.state);
            self.refresh(&mut st, true)
                .map(|()| st.recs.iter().map(|r| r.uid).collect())
        };
        let Some(dest) = dest.as_any().downcast_ref::<MaildirMailbox>() else {
            return;
        };
        match here {
            Ok(here) => {
                let undo: Vec<(u32, u32)> =
                    pairs.iter().copied().filter(|p| here.contains(&p.0)).collect();
                dest.remove_copies(&undo);
            }
            Err(e) => tracing::error!(
                "{}: MOVE failed and the source cannot be read ({e}); keeping the copies",
                self.dir.display()
            ),
        }
    }
}

impl MaildirMailbox {
    /// STORE, with RFC 7162 §3.1.3's UNCHANGEDSINCE test when `limit` is given (checked
    /// under the state lock, against mod-sequences just refreshed).
    fn store_if(
        &self,
        uids: &[u32],
        op: FlagOp,
        flags: Flags,
        keywords: &[String],
        limit: Option<u64>,
    ) -> Result<(Vec<MessageMeta>, Vec<u32>)> {
        let mut st = lock(&self.state);
        self.refresh(&mut st, false)?;
        let bits = self.keyword_bits(&mut st, keywords, op != FlagOp::Remove)?;
        let cur_before = st.stamps.cur;
        let mut out = Vec::with_capacity(uids.len());
        let mut failed = Vec::new();
        let mut changed = false;
        let mut retried = false;
        for &uid in uids {
            let mut tries = 0;
            loop {
                tries += 1;
                let Some(i) = st.find(uid) else { break };
                let r = &st.recs[i];
                if limit.is_some_and(|n| r.modseq > n) {
                    failed.push(uid);
                    break;
                }
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
                let watched = !r.in_new && lock(&self.watcher).is_some();
                if watched {
                    self.own_renames.expect(&r.fname, &to_name);
                }
                let renamed = fs::rename(&from, &to);
                if watched && renamed.is_err() {
                    self.own_renames.cancel(&st.recs[i].fname, &to_name);
                }
                match renamed {
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
            // Durable before the command reports success, so a STORE the client saw succeed
            // survives a crash (ARCHITECTURE.md, "Mail store").
            fsync_dir(&self.dir.join("cur"))?;
            self.restamp_cur(&mut st, cur_before)?;
            // The new mod-sequences are durable before the client is told (modseq.rs).
            let logged = self.update_modseqs(&mut st);
            for m in &mut out {
                if let Some(i) = st.find(m.uid) {
                    m.modseq = st.recs[i].modseq;
                }
            }
            drop(st);
            self.bump();
            logged?;
        }
        Ok((out, failed))
    }
}

impl Mailbox for MaildirMailbox {
    fn name(&self) -> &str {
        &self.name
    }

    fn sync(&self, view: &mut View) -> Result<Changes> {
        self.sync_view(view)
    }

    fn read(&self, uid: u32) -> Result<Arc<[u8]>> {
        for attempt in 0..2 {
            let (path, vsize) = self.locate(uid, attempt)?;
            match super::fsutil::read_file(&path) {
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

    fn read_header(&self, uid: u32) -> Result<Arc<[u8]>> {
        for attempt in 0..2 {
            let (path, _) = self.locate(uid, attempt)?;
            match super::fsutil::retry_estale(|| read_head(&path)) {
                Ok(raw) => return Ok(to_crlf(&raw).into()),
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempt == 0 => continue,
                Err(e) => return Err(io_err(e, "read", &path)),
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    fn for_each_header(&self, uids: &[u32], each: &mut dyn FnMut(usize, Option<&[u8]>) -> bool) {
        self.headers_batch(uids, each)
    }

    fn missing(&self, uids: &[u32]) -> Result<Vec<u32>> {
        let mut st = lock(&self.state);
        self.refresh(&mut st, false)?;
        Ok(uids
            .iter()
            .copied()
            .filter(|u| st.find(*u).is_none())
            .collect())
    }

    fn store_flags(
        &self,
        uids: &[u32],
        op: FlagOp,
        flags: Flags,
        keywords: &[String],
    ) -> Result<Vec<MessageMeta>> {
        counted(self.store_if(uids, op, flags, keywords, None).map(|r| r.0), "store")
    }

    fn store_flags_unchanged_since(
        &self,
        uids: &[u32],
        op: FlagOp,
        flags: Flags,
        keywords: &[String],
        modseq: u64,
    ) -> Result<(Vec<MessageMeta>, Vec<u32>)> {
        counted(self.store_if(uids, op, flags, keywords, Some(modseq)), "store")
    }

    fn append(
        &self,
        data: &[u8],
        flags: Flags,
        keywords: &[String],
        internal_date: Option<SystemTime>,
    ) -> Result<u32> {
        let r = self.save_message(data, flags, keywords, internal_date);
        counted(r, "save")
    }

    fn save_begin(&self) -> Result<Box<dyn NewMessage>> {
        Ok(Box::new(self.stage()?))
    }

    fn save_finish(
        &self,
        msg: Box<dyn NewMessage>,
        flags: Flags,
        keywords: &[String],
        internal_date: Option<SystemTime>,
    ) -> Result<u32> {
        let r = self.save_new(msg, flags, keywords, internal_date);
        counted(r, "save")
    }

    fn deliver_finish(&self, msg: Box<dyn NewMessage>) -> Result<Option<u32>> {
        self.deliver_new(msg).map(|()| None)
    }

    fn copy_to(&self, uids: &[u32], dest: &dyn Mailbox) -> Result<Vec<(u32, u32)>> {
        counted(self.copy_messages(uids, dest, false), "copy")
    }

    fn move_to(&self, uids: &[u32], dest: &dyn Mailbox) -> Result<Vec<(u32, u32)>> {
        // Within one user a MOVE does not grow the usage: not checked, as Dovecot.
        let pairs = self.copy_messages(uids, dest, true)?;
        let moved: HashSet<u32> = pairs.iter().map(|p| p.0).collect();
        if let Err(e) = self.delete_where(|r| moved.contains(&r.uid)) {
            self.undo_move(&pairs, dest);
            return Err(e);
        }
        counted(Ok(pairs), "move")
    }

    fn expunge(&self, uids: Option<&[u32]>) -> Result<Vec<u32>> {
        let only: Option<HashSet<u32>> = uids.map(|u| u.iter().copied().collect());
        let r = self.delete_where(|r| {
            r.flags.contains(Flags::DELETED) && only.as_ref().is_none_or(|o| o.contains(&r.uid))
        });
        counted(r, "expunge")
    }

    fn remove(&self, uids: &[u32]) -> Result<()> {
        let set: HashSet<u32> = uids.iter().copied().collect();
        counted(self.delete_where(|r| set.contains(&r.uid)).map(|_| ()), "remove")
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

    fn derived_many(&self, uids: &[u32], field: Derived) -> Vec<Option<Arc<[u8]>>> {
        let st = lock(&self.state);
        if !st.loaded {
            return vec![None; uids.len()];
        }
        let uid_validity = st.uid_validity;
        if let Ok(hits) = self.derived.get_many(uid_validity, uids, field) {
            return hits;
        }
        let live: Vec<u32> = st.recs.iter().map(|r| r.uid).collect();
        drop(st);
        self.derived.load(uid_validity, &live);
        self.derived
            .get_many(uid_validity, uids, field)
            .unwrap_or_else(|()| vec![None; uids.len()])
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
        let mut w = lock(&self.watcher);
        if w.is_none() && !self.registry.no_watch.load(Ordering::Relaxed) {
            let tx = self.tx.clone();
            let notified = self.notified.clone();
            let own = self.own_renames.clone();
            let cur = self.dir.join("cur");
            let dirs = [self.dir.join("new"), cur.clone()];
            let made = super::watch::FolderWatch::start(&dirs, move |event: notify::Event| {
                // Opens and reads are not asked of the kernel (`watch.rs`); our own STORE
                // is in the cache already: only another program's change makes the next
                // refresh rescan at once (own_renames.rs).
                if !own_renames::may_change(&event.kind) {
                    return;
                }
                if !own.claim(&cur, &event) {
                    notified.store(true, Ordering::Release);
                }
                tx.send_modify(|v| *v = v.wrapping_add(1));
            });
            match made {
                Ok(watcher) => *w = Some(watcher),
                Err(e) => tracing::warn!("inotify for {}: {e}", self.dir.display()),
            }
        }
        self.tx.subscribe()
    }

    fn vanished_since(&self, modseq: u64) -> Result<Option<Vec<u32>>> {
        let mut st = lock(&self.state);
        self.refresh(&mut st, false)?;
        Ok(st.modseqs.vanished_since(modseq))
    }

    fn keyword_room(&self) -> bool {
        let st = lock(&self.state);
        st.keywords.names.iter().flatten().count() < super::keywords::MAX_KEYWORDS
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
    fix_dir_mode(dir, mode)?;
    create_maildir(dir, mode)?;
    File::create(dir.join("maildirfolder")).ctx("create", &dir.join("maildirfolder"))?;
    let list = Uidlist::new(next_uid_validity(user_root)?);
    write_atomic(&dir.join("dovecot-uidlist"), list.render().as_bytes())?;
    if let Some(parent) = dir.parent() {
        fsync_dir(parent)?;
    }
    Ok(())
}

/// Counts a successful store write in `mailserver_store_operations_total{op}`.
fn counted<T>(r: Result<T>, op: &'static str) -> Result<T> {
    if r.is_ok() {
        crate::metrics::get().store_op(op);
    }
    r
}

/// The start of the file at `path` up to and including the empty line that ends the
/// message's header (the whole file when it has none): read in growing chunks, so a
/// 20 KB message with a 1 KB header costs one `read`, with no `statx` and no read to EOF.
fn read_head(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = fs::File::open(path)?;
    let mut buf = Vec::new();
    let mut chunk = 8 * 1024;
    loop {
        let start = buf.len();
        buf.resize(start + chunk, 0);
        let n = file.read(&mut buf[start..])?;
        buf.truncate(start + n);
        if n == 0 {
            return Ok(buf);
        }
        // From the start again: the empty line may straddle the chunks (a header is small
        // and the chunks double, so this stays linear in practice).
        let end = crate::store::header_len(&buf);
        if end < buf.len() || (end == buf.len() && ends_header(&buf)) {
            buf.truncate(end);
            return Ok(buf);
        }
        chunk = (chunk * 2).min(256 * 1024);
    }
}

/// Whether `buf` ends with the empty line that ends a header.
pub(super) fn ends_header(buf: &[u8]) -> bool {
    buf.ends_with(b"\n\n") || buf.ends_with(b"\n\r\n") || buf == b"\n" || buf == b"\r\n"
}

#[cfg(test)]
mod tests {
    use super::*;

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
