//! Sync: brings a folder's cache up to date with the disk and a session's view up to date
//! with the cache. Scans `new/` and `cur/` only when the stamps of those directories or of
//! `dovecot-uidlist` moved, merges the scan with the uidlist (both in UID order), numbers
//! files without a record under the uidlist dot-lock and moves `new/` files to `cur/`; then
//! tells a view what was expunged, added and re-flagged, handing out `\Recent` once (across
//! processes too: `recent.rs`).
//!
//! Mirrors Dovecot's `src/lib-storage/index/maildir/maildir-sync.c` (with the uidlist side of
//! `maildir-uidlist.c` and the view side of `maildir-sync-index.c`).

use super::crlf::compute_vsize;
use super::dotlock::{DotLock, LOCK_TIMEOUT};
use super::filename::{self, parse};
use super::fsutil::{fsync_dir, io_err, sweep_temps, TEMP_STALE};
use super::mailbox::{next_uid_validity, MaildirMailbox, Rec, Stamp, Stamps, State, MTIME_SLACK};
use super::mutex::lock;
use super::recent;
use super::uidlist::Uidlist;
use crate::store::{Changes, Error, ErrorKind, Result, View};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

/// `tmp/` files older than this are left-overs of a crash (Dovecot uses 36 hours too).
const TMP_STALE: Duration = Duration::from_secs(36 * 3600);

/// A directory entry found by a scan.
#[derive(Debug, Clone)]
struct Found {
    fname: String,
    in_new: bool,
}

impl Found {
    /// The file name without its `:2,` info (what the uidlist records).
    fn base(&self) -> &str {
        self.fname.split(':').next().unwrap_or("")
    }
}

/// The entry's inode last changed more than `age` before `now` (false if that is unknown).
/// For `tmp/` files: a message being saved gets its INTERNALDATE as mtime (possibly years
/// ago) just before it is renamed into `cur/`, but setting it changes the ctime, so such a
/// file is never taken for a stale one (Dovecot's `unlink_old_files` looks at the ctime).
fn changed_before(e: &fs::DirEntry, age: Duration, now: SystemTime) -> bool {
    use std::os::unix::fs::MetadataExt;
    e.metadata().ok().is_some_and(|m| {
        let ctime = SystemTime::UNIX_EPOCH + Duration::from_secs(m.ctime().max(0) as u64);
        ctime + age < now
    })
}

/// The entry was last modified more than `age` before `now` (false if that is unknown).
fn modified_before(e: &fs::DirEntry, age: Duration, now: SystemTime) -> bool {
    e.metadata()
        .ok()
        .and_then(|m| m.modified().ok())
        .is_some_and(|m| m + age < now)
}

impl MaildirMailbox {
    /// Lists `new/` and `cur/` (ignores dot files and names that are not messages).
    fn scan(&self) -> Result<Vec<Found>> {
        let mut out = Vec::new();
        for (sub, in_new) in [("new", true), ("cur", false)] {
            let d = self.dir.join(sub);
            let rd = match super::fsutil::read_dir_all(&d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound && in_new => continue,
                Err(e) => return Err(io_err(e, "readdir", &d)),
            };
            for e in rd {
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

    /// Removes `tmp/` files left by crashes long ago, and our temp files (metadata writes,
    /// `mailserver.cache` rewrites, dot-lock temps) of writers that died between create and
    /// rename or unlink.
    fn clean_tmp(&self) {
        sweep_temps(&self.dir, TEMP_STALE);
        let tmp = self.dir.join("tmp");
        let Ok(rd) = fs::read_dir(&tmp) else { return };
        let now = SystemTime::now();
        for e in rd.flatten().take(10_000) {
            let old =
                modified_before(&e, TMP_STALE, now) && changed_before(&e, TMP_STALE, now);
            if old && e.file_type().is_ok_and(|t| t.is_file()) {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    /// Brings the cache up to date with the disk. With `force`, rescans even if the stamps
    /// did not change (a file we expected was gone).
    pub(super) fn refresh(&self, st: &mut State, force: bool) -> Result<()> {
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
        // The mod-sequence log could not be written last time: try again before anything
        // is shown without its mod-sequence.
        if st.loaded && !st.modseqs.is_open() {
            self.update_modseqs(st)?;
        }
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
        let first_load = !st.loaded;
        if first_load {
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
            let names: HashSet<&str> = found.iter().map(|f| f.base()).collect();
            if st.recs.iter().any(|r| !names.contains(r.base())) {
                let again = self.scan()?;
                found.extend(again);
            }
        }
        let complete = match &list {
            Some(l) => {
                let known: HashSet<&str> = l.records.iter().map(|r| r.base.as_str()).collect();
                found.iter().all(|f| !f.in_new && known.contains(f.base()))
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
        if let Err(e) = self.update_modseqs(st) {
            // Rescan next time rather than show messages without their mod-sequences.
            st.stamps = Stamps::default();
            return Err(e);
        }
        if first_load {
            // Another process (or an earlier run) may have handed out `\Recent` already,
            // or left messages nobody has seen: the folder's file says which.
            match recent::load(&self.dir, st.uid_validity, st.recent_floor) {
                Ok(f) => st.recent_floor = f,
                Err(e) => tracing::warn!("{e}"),
            }
        }
        Ok(())
    }

    /// Gives every cached message its mod-sequence from `mailserver.modseq`, logging what
    /// changed since (`modseq.rs`). Called under the state lock after every change of the
    /// cache; on failure the messages keep their old values and the log is reopened next
    /// time.
    pub(super) fn update_modseqs(&self, st: &mut State) -> Result<()> {
        let msgs: Vec<(u32, u8, u32)> = st.recs.iter().map(|r| (r.uid, r.flags.0, r.kw)).collect();
        let mut seqs = Vec::with_capacity(msgs.len());
        let (validity, next) = (st.uid_validity, st.next_uid);
        st.modseqs
            .update(&self.dir, validity, next, &msgs, &mut seqs)?;
        for (r, m) in st.recs.iter_mut().zip(seqs) {
            r.modseq = m;
        }
        Ok(())
    }

    /// After our own renames into or within `cur/` (under the state lock, the cache already
    /// updated): if the cache was current for `cur/` before them (its stamp equals `before`,
    /// the directory's stamp just before our change), take the new stamp so the
    /// next refresh does not rescan for our own change. The new stamp is too fresh to trust,
    /// so a change another process made in the same moment is still found by the delayed
    /// recheck in [`MaildirMailbox::refresh`].
    pub(super) fn restamp_cur(&self, st: &mut State, before: Option<Stamp>) -> Result<()> {
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
            .filter(|&i| !known.contains(found[i].base()))
            .collect();
        fresh.sort_by_cached_key(|&i| {
            let (secs, usecs, name) = filename::time_key(found[i].base());
            (secs, usecs, name.to_string())
        });
        let mut seen_new: HashSet<String> = HashSet::new();
        for i in fresh {
            let f = &found[i];
            let base = f.base().to_string();
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
            let base = f.base();
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
        let present: HashSet<&str> = found.iter().map(|f| f.base()).collect();
        if list
            .records
            .iter()
            .any(|r| !present.contains(r.base.as_str()))
        {
            let again = self.scan()?;
            let present: HashSet<&str> =
                found.iter().chain(again.iter()).map(|f| f.base()).collect();
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
            let base = f.base().to_string();
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
                modseq: 0,
            });
        }
        st.recs = recs;
        st.uid_validity = list.uid_validity;
        st.next_uid = list.next_uid;
    }

    /// The body of [`Mailbox::sync`](crate::store::Mailbox::sync): brings `view` up to date and
    /// says what changed.
    pub(super) fn sync_view(&self, view: &mut View) -> Result<Changes> {
        let mut st = lock(&self.state);
        self.refresh(&mut st, false)?;
        let mut changes = Changes::default();
        if view.uid_validity != 0 && view.uid_validity != st.uid_validity {
            changes.expunged = vec![1; view.messages.len()];
            changes.expunged_uids = view.messages.iter().map(|m| m.uid).collect();
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
                if m.flags != r.flags || m.keywords != keywords || m.modseq != r.modseq {
                    m.flags = r.flags;
                    m.keywords = keywords;
                    m.modseq = r.modseq;
                    changes.flags_changed.push(m.uid);
                }
                kept.push(m);
                j += 1;
            } else {
                changes.expunged.push(kept.len() as u32 + 1);
                changes.expunged_uids.push(m.uid);
            }
        }
        let last = kept.last().map(|m| m.uid).unwrap_or(0);
        let start = st.recs.partition_point(|r| r.uid <= last);
        let candidates = !view.peek_recent
            && st.recs[start..]
                .iter()
                .any(|r| r.uid >= st.recent_floor && !r.recent_taken);
        if let (true, Some(newest)) = (candidates, st.recs.last()) {
            // Taken under the folder's lock file, so a session of another process cannot
            // take the same messages (recent.rs).
            let next = newest.uid.saturating_add(1);
            match recent::claim(&self.dir, st.uid_validity, st.recent_floor, next) {
                Ok(floor) => st.recent_floor = floor,
                Err(e) => tracing::warn!("{e}"),
            }
        }
        for idx in start..st.recs.len() {
            let eligible = st.recs[idx].uid >= st.recent_floor && !st.recs[idx].recent_taken;
            if eligible && !view.peek_recent {
                st.recs[idx].recent_taken = true;
            }
            kept.push(Self::meta(st, &st.recs[idx], eligible));
            changes.added += 1;
        }
        if candidates {
            st.recent_floor = st
                .recent_floor
                .max(st.recs.last().map_or(0, |r| r.uid.saturating_add(1)));
        }
        view.messages = kept;
        view.uid_validity = st.uid_validity;
        view.uid_next = st.next_uid;
        view.highest_modseq = st.modseqs.highest;
        Ok(changes)
    }
}
