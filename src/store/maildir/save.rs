//! Save (IMAP APPEND). The message goes to `tmp/` (CRLF → LF, fsynced; a large APPEND a
//! piece at a time as it arrives, [`StagedMessage`]), is renamed into `cur/` with its sizes
//! and flags in the name, the directory is fsynced, and only then is its UID
//! recorded in `dovecot-uidlist` (dot-lock, re-read, write a temp file, fsync, rename), so a
//! crash at any step loses nothing acknowledged and never reuses a UID.
//!
//! The uidlist rename is the commit point. A save refused before it (full disk, lock
//! timeout, I/O error) removes its file from `tmp/` or `cur/` ([`MaildirMailbox::discard`]):
//! otherwise the next sync would number it and a client that retried would have two. After
//! it, nothing fails the save: the message is there, so a later cache update that fails is
//! logged and the next sync rescans.
//!
//! Mirrors Dovecot's `src/lib-storage/index/maildir/maildir-save.c`.

use super::crlf::ToDisk;
use super::dotlock::{DotLock, LOCK_TIMEOUT};
use super::filename;
use super::fsutil::{file_mode_for, fix_mode, fsync_dir, io_err, IoCtx};
use super::mailbox::{next_uid_validity, MaildirMailbox, Rec, Stamp, Stamps, State};
use super::mutex::lock;
use super::uidlist::Uidlist;
use crate::store::{Error, ErrorKind, Flags, NewMessage, Result};
use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The base and `cur/` name of a file just put there, for [`MaildirMailbox::discard`].
pub(super) fn made(entry: &(String, Rec)) -> (String, Box<str>) {
    (entry.0.clone(), entry.1.fname.clone())
}

impl MaildirMailbox {
    /// Records new files (already in `cur/`) under the uidlist lock; returns their UIDs. An
    /// error means they were not (durably) recorded: the caller removes them.
    pub(super) fn record_new(
        &self,
        st: &mut State,
        entries: Vec<(String, Rec)>,
    ) -> Result<Vec<u32>> {
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
        // Committed: from here on nothing fails the save.
        let after = Stamp::of(&self.uidlist_path()).unwrap_or(None);
        drop(lock);
        if others || !st.loaded {
            // Someone else numbered messages too: take them all in order.
            if let Err(e) = self.refresh(st, true) {
                self.forget_stamps(st, &e);
            }
        } else {
            st.recs.extend(recs);
            st.next_uid = list.next_uid;
            if before == st.stamps.uidlist {
                st.stamps.uidlist = after;
            }
            // Committed already: a failure here only means the next refresh logs them.
            if let Err(e) = self.update_modseqs(st) {
                self.forget_stamps(st, &e);
            }
        }
        Ok(uids)
    }

    /// Removes files a refused save or copy put into `cur/`, so they never show up later. A
    /// file renamed meanwhile (another process numbered it and changed its flags) is found by
    /// its base. Best effort: what cannot be removed is logged.
    pub(super) fn discard(&self, files: &[(String, Box<str>)]) {
        let cur = self.dir.join("cur");
        let mut removed = 0;
        let mut renamed: HashSet<&str> = HashSet::new();
        for (base, fname) in files {
            match fs::remove_file(cur.join(&**fname)) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    renamed.insert(base);
                }
                Err(e) => tracing::error!(
                    "{}: cannot remove a refused message: {e}",
                    cur.join(&**fname).display()
                ),
            }
        }
        if !renamed.is_empty() {
            for e in fs::read_dir(&cur).into_iter().flatten().flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                let base = name.split(':').next().unwrap_or("");
                if renamed.contains(base) && fs::remove_file(e.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        if removed > 0 {
            tracing::info!(
                "{}: removed {removed} message(s) of a refused save or copy",
                self.dir.display()
            );
            if let Err(e) = fsync_dir(&cur) {
                tracing::warn!("{e}");
            }
        }
    }

    /// After a committed change whose cache update failed: the next refresh rescans.
    pub(super) fn forget_stamps(&self, st: &mut State, e: &crate::store::Error) {
        tracing::warn!("{}: cache update failed, will rescan: {e}", self.dir.display());
        st.stamps = Stamps::default();
    }

    /// Renames `tmp/<base>` into `cur/` with `flags` and `kw` in its name (removing it from
    /// `tmp/` if that fails); returns the base and its record, not numbered yet. The caller
    /// fsyncs `cur/`: once per message for APPEND, once per batch for COPY.
    pub(super) fn move_tmp_to_cur(
        &self,
        base: String,
        flags: Flags,
        kw: u32,
        vsize: u64,
        mtime: SystemTime,
    ) -> Result<(String, Rec)> {
        let tmp = self.dir.join("tmp").join(&base);
        self.rename_into_cur(&tmp, base, flags, kw, vsize, mtime)
    }

    /// Renames `tmp` (a file in `tmp/`) to `cur/<base>:2,<info>` (removing it if that
    /// fails); returns the base and its record, not numbered yet.
    fn rename_into_cur(
        &self,
        tmp: &Path,
        base: String,
        flags: Flags,
        kw: u32,
        vsize: u64,
        mtime: SystemTime,
    ) -> Result<(String, Rec)> {
        let fname = filename::cur_name(&base, &filename::info(flags, kw, ""));
        let dest = self.dir.join("cur").join(&fname);
        if let Err(e) = fs::rename(tmp, &dest) {
            let _ = fs::remove_file(tmp);
            return Err(io_err(e, "rename", &dest));
        }
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
                modseq: 0,
            },
        ))
    }

    /// The body of [`Mailbox::append`](crate::store::Mailbox::append): saves one message,
    /// durable before this returns (the same steps as a message saved in pieces).
    pub(super) fn save_message(
        &self,
        data: &[u8],
        flags: Flags,
        keywords: &[String],
        internal_date: Option<SystemTime>,
    ) -> Result<u32> {
        let mut msg = self.stage()?;
        msg.write_piece(data)?;
        self.save_staged(msg, flags, keywords, internal_date)
    }

    /// The body of [`Mailbox::save_begin`](crate::store::Mailbox::save_begin): a new file in
    /// `tmp/` under a unique name without sizes (they are not known yet).
    pub(super) fn stage(&self) -> Result<StagedMessage> {
        let tmp_name = filename::new_unsized_base();
        let path = self.dir.join("tmp").join(&tmp_name);
        let mode = file_mode_for(&self.dir);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .ctx("create", &path)?;
        let msg = StagedMessage {
            dir: self.dir.clone(),
            tmp_name,
            path,
            file,
            conv: ToDisk::default(),
            buf: Vec::new(),
            saved: false,
        };
        fix_mode(&msg.file, mode, &msg.path)?;
        Ok(msg)
    }

    /// The body of [`Mailbox::save_finish`](crate::store::Mailbox::save_finish).
    pub(super) fn save_new(
        &self,
        msg: Box<dyn NewMessage>,
        flags: Flags,
        keywords: &[String],
        internal_date: Option<SystemTime>,
    ) -> Result<u32> {
        match msg.into_any().downcast::<StagedMessage>() {
            Ok(m) => self.save_staged(*m, flags, keywords, internal_date),
            Err(_) => Err(Error::new(
                ErrorKind::Internal,
                format!("{}: save_finish of a message not staged here", self.dir.display()),
            )),
        }
    }

    /// The body of [`Mailbox::deliver_finish`](crate::store::Mailbox::deliver_finish): the
    /// staged file is completed and fsynced, renamed into `new/` under its sized base name
    /// (as Dovecot's `lmtp` and any Maildir MDA deliver), and `new/` is fsynced before this
    /// returns; the next sync (of any process) numbers it and moves it to `cur/`, `\Recent`
    /// in the first session that sees it.
    ///
    /// Crash safety, the same guarantee as APPEND's: before `Ok` the file's data and inode
    /// are durable (fsync of the file) and so is its name in `new/` (an fsync of `new/`
    /// started after the rename returned, shared with concurrent deliveries, `dirsync.rs`).
    /// A crash before that leaves the file in `tmp/` (swept as Dovecot does) or already in
    /// `new/`: at worst a message the MTA will send again, never one acknowledged and lost.
    /// Not taking the folder's lock or the uidlist's dot-lock here is what lets concurrent
    /// deliveries share the directory fsync: numbering is the reader's business, as it is
    /// for every other program that writes into `new/`.
    pub(super) fn deliver_new(&self, msg: Box<dyn NewMessage>) -> Result<()> {
        let mut msg = match msg.into_any().downcast::<StagedMessage>() {
            Ok(m) if m.dir == self.dir => m,
            _ => {
                return Err(Error::new(
                    ErrorKind::Internal,
                    format!("{}: delivery of a message not staged here", self.dir.display()),
                ))
            }
        };
        msg.complete(None)?;
        let (size, vsize) = msg.conv.sizes();
        let base = filename::with_sizes(&msg.tmp_name, size, vsize);
        // Refused: `msg` is dropped, which removes its file.
        self.quota_check_delivery(size)?;
        let new = self.dir.join("new");
        let dest = new.join(&base);
        msg.saved = true;
        if let Err(e) = fs::rename(&msg.path, &dest) {
            let _ = fs::remove_file(&msg.path);
            return Err(io_err(e, "rename", &dest));
        }
        if let Err(e) = self.new_sync.sync(&new) {
            // Not acknowledged: take it back so the MTA's retry does not make two.
            match fs::remove_file(&dest) {
                Err(re) if re.kind() == io::ErrorKind::NotFound => {
                    // A sync moved it to cur/ meanwhile.
                    self.discard(&[(base.clone(), base.into())]);
                }
                _ => {}
            }
            return Err(e);
        }
        self.quota_changed(size as i64, 1);
        self.bump();
        Ok(())
    }

    /// Saves a staged message: the file is completed and fsynced, then (under the mailbox lock) renamed into `cur/`
    /// with its sizes and flags in the name, `cur/` is fsynced and the UID recorded.
    fn save_staged(
        &self,
        mut msg: StagedMessage,
        flags: Flags,
        keywords: &[String],
        internal_date: Option<SystemTime>,
    ) -> Result<u32> {
        if msg.dir != self.dir {
            return Err(Error::new(
                ErrorKind::Internal,
                format!("{}: message staged in {}", self.dir.display(), msg.dir.display()),
            ));
        }
        let mtime = msg.complete(internal_date)?;
        let (size, vsize) = msg.conv.sizes();
        let base = filename::with_sizes(&msg.tmp_name, size, vsize);
        // Refused: `msg` is dropped, which removes its file.
        self.quota_check(size, 1)?;
        let mut st = lock(&self.state);
        // No rescan first: `record_new` notices other writers from the uidlist it re-reads
        // under the lock, so a run of APPENDs does not readdir a big mailbox each time.
        if !st.loaded {
            self.refresh(&mut st, false)?;
        }
        let kw = self.keyword_bits(&mut st, keywords, true)?;
        let cur_before = Stamp::of(&self.dir.join("cur"))?;
        msg.saved = true;
        let entry = self.rename_into_cur(&msg.path, base, flags, kw, vsize, mtime)?;
        let mine = [made(&entry)];
        if let Err(e) = fsync_dir(&self.dir.join("cur")) {
            self.discard(&mine);
            return Err(e);
        }
        let uids = match self.record_new(&mut st, vec![entry]) {
            Ok(uids) => uids,
            Err(e) => {
                self.discard(&mine);
                return Err(e);
            }
        };
        if let Err(e) = self.restamp_cur(&mut st, cur_before) {
            self.forget_stamps(&mut st, &e);
        }
        drop(st);
        self.quota_changed(size as i64, 1);
        self.bump();
        Ok(uids[0])
    }
}

/// A message being written to its mailbox's `tmp/` a piece at a time, CRLF → LF as it
/// arrives ([`NewMessage`]); [`MaildirMailbox::save_staged`] moves it into `cur/`. Dropped
/// unsaved (a failed or abandoned APPEND, a client gone mid-literal), it is removed.
pub(super) struct StagedMessage {
    /// The Maildir whose `tmp/` holds it (it may only be saved there).
    dir: PathBuf,
    /// Its name in `tmp/`: the base it gets in `cur/` before the sizes are added.
    tmp_name: String,
    path: PathBuf,
    file: File,
    conv: ToDisk,
    /// The stored form of the current piece (reused: one piece is held at a time).
    buf: Vec<u8>,
    /// Renamed out of `tmp/` (or being renamed): nothing to remove on drop.
    saved: bool,
}

impl StagedMessage {
    fn write_piece(&mut self, data: &[u8]) -> Result<()> {
        self.buf.clear();
        self.conv.push(data, &mut self.buf);
        self.file.write_all(&self.buf).ctx("write", &self.path)
    }

    /// Writes what the converter held back, sets INTERNALDATE and fsyncs; returns the mtime.
    fn complete(&mut self, internal_date: Option<SystemTime>) -> Result<SystemTime> {
        self.buf.clear();
        self.conv.finish(&mut self.buf);
        self.file.write_all(&self.buf).ctx("write", &self.path)?;
        self.buf = Vec::new();
        if let Some(t) = internal_date {
            self.file.set_modified(t).ctx("utime", &self.path)?;
        }
        crate::metrics::get().fsync(|| self.file.sync_all()).ctx("fsync", &self.path)?;
        Ok(self
            .file
            .metadata()
            .ctx("fstat", &self.path)?
            .modified()
            .unwrap_or(SystemTime::UNIX_EPOCH))
    }
}

impl NewMessage for StagedMessage {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.write_piece(data)
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}

impl Drop for StagedMessage {
    fn drop(&mut self) {
        if !self.saved {
            let _ = fs::remove_file(&self.path);
        }
    }
}
