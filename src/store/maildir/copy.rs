//! Copy (and so move): source messages are hard-linked (copied across file systems) into the
//! destination's `tmp/`, renamed into its `cur/` with their flags, and numbered by the
//! destination's uidlist; a source renamed meanwhile by a flag change elsewhere is looked up
//! once more. A refused COPY leaves nothing in the destination: the files it linked are
//! removed, and so are copies a first pass already numbered.
//!
//! Mirrors Dovecot's `src/lib-storage/index/maildir/maildir-copy.c`.

use super::filename;
use super::fsutil::{fsync_dir, io_err};
use super::mailbox::{MaildirMailbox, Rec, State};
use super::mutex::lock;
use super::save::made;
use crate::store::{Error, ErrorKind, Flags, Mailbox, Result};
use std::fs::{self, OpenOptions};
use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

/// A source message handed to [`MaildirMailbox::import`] by copy/move.
struct Import {
    src_uid: u32,
    path: PathBuf,
    flags: Flags,
    keywords: Vec<String>,
    vsize: u64,
    mtime: SystemTime,
}

impl MaildirMailbox {
    /// Links (or copies) source messages into this mailbox and numbers them. If that fails,
    /// the files this call put here are removed again: a refused COPY leaves nothing.
    fn import(&self, items: &[Import]) -> Result<Vec<Option<u32>>> {
        let mut st = lock(&self.state);
        if !st.loaded {
            self.refresh(&mut st, false)?;
        }
        let mut entries = Vec::new();
        let mut slots = Vec::new();
        let linked = self.link_into_cur(&mut st, items, &mut entries, &mut slots);
        let mine: Vec<(String, Box<str>)> = entries.iter().map(made).collect();
        let added: u64 = entries
            .iter()
            .filter_map(|(_, r)| filename::parse(&r.fname).and_then(|p| p.size))
            .sum();
        let numbered = linked.and_then(|()| {
            if entries.is_empty() {
                return Ok(Vec::new());
            }
            fsync_dir(&self.dir.join("cur"))?;
            self.record_new(&mut st, entries)
        });
        let uids = match numbered {
            Ok(uids) => uids,
            Err(e) => {
                self.discard(&mine);
                return Err(e);
            }
        };
        let mut out = vec![None; items.len()];
        if uids.is_empty() {
            return Ok(out);
        }
        for (slot, uid) in slots.into_iter().zip(uids) {
            out[slot] = Some(uid);
        }
        drop(st);
        self.quota_changed(added as i64, mine.len() as i64);
        self.bump();
        Ok(out)
    }

    /// The file work of [`MaildirMailbox::import`]: each source still there is linked (or
    /// copied) into `tmp/` and renamed into `cur/`; what was made so far is in `entries` (with
    /// the index of its item in `slots`) even when this fails.
    fn link_into_cur(
        &self,
        st: &mut State,
        items: &[Import],
        entries: &mut Vec<(String, Rec)>,
        slots: &mut Vec<usize>,
    ) -> Result<()> {
        for (i, it) in items.iter().enumerate() {
            let kw = self.keyword_bits(st, &it.keywords, true)?;
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
                        crate::metrics::get().fsync(|| f.sync_all())
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
            entries.push(self.move_tmp_to_cur(base, it.flags, kw, it.vsize, it.mtime)?);
            slots.push(i);
        }
        Ok(())
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

    /// The body of [`Mailbox::copy_to`](crate::store::Mailbox::copy_to): returns (source, new)
    /// UID pairs.
    pub(super) fn copy_messages(
        &self,
        uids: &[u32],
        dest: &dyn Mailbox,
        moving: bool,
    ) -> Result<Vec<(u32, u32)>> {
        let dest = dest
            .as_any()
            .downcast_ref::<MaildirMailbox>()
            .ok_or_else(|| Error::new(ErrorKind::Internal, "copy to a non-Maildir mailbox"))?;
        let mut pairs = Vec::new();
        let items = self.exports(uids, false)?;
        if !moving {
            let bytes: u64 = items
                .iter()
                .filter_map(|it| fs::metadata(&it.path).ok())
                .map(|m| m.len())
                .sum();
            dest.quota_check(bytes, items.len() as u64)?;
        }
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
            let again = self
                .exports(&missed, true)
                .and_then(|items| Ok((dest.import(&items)?, items)));
            match again {
                Ok((got, items)) => pairs.extend(
                    items
                        .iter()
                        .zip(got)
                        .filter_map(|(it, u)| u.map(|u| (it.src_uid, u))),
                ),
                Err(e) => {
                    // Refused: the copies of the first pass go too.
                    dest.remove_copies(&pairs);
                    return Err(e);
                }
            }
        }
        Ok(pairs)
    }

    /// Expunges the copies (destination UIDs of `pairs`) a refused COPY or MOVE made here.
    /// Best effort: what cannot be removed is logged.
    pub(super) fn remove_copies(&self, pairs: &[(u32, u32)]) {
        if pairs.is_empty() {
            return;
        }
        let copies: Vec<u32> = pairs.iter().map(|p| p.1).collect();
        match self.remove(&copies) {
            Ok(()) => tracing::info!(
                "{}: removed {} copies of a refused COPY/MOVE",
                self.dir.display(),
                copies.len()
            ),
            Err(e) => tracing::error!(
                "{}: cannot remove the copies of a refused COPY/MOVE: {e}",
                self.dir.display()
            ),
        }
    }
}
