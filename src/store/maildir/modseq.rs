//! Mod-sequences (RFC 7162 §3.1.1): every message has one, the folder a HIGHESTMODSEQ
//! that only grows while its UIDVALIDITY stays, and expunged UIDs are remembered with the
//! mod-sequence of their expunge so `VANISHED (EARLIER)` can answer any `known-modseq`.
//!
//! Kept in `mailserver.modseq` beside `dovecot-uidlist` (Dovecot keeps its own in
//! `dovecot.index`; neither reads the other's). The file is a log of lines:
//!
//! ```text
//! mailserver-modseq 1 <uidvalidity> <highest> <pruned>   header (of a compacted file)
//! m <uid> <modseq> <flags> <keyword bits hex>             message uid got modseq with these flags
//! x <uid>[:<uid>] <modseq>                                 these UIDs were expunged at modseq
//! ```
//!
//! Nothing else knows when a message changed: after every refresh of the folder's cache
//! (our own STORE, APPEND, EXPUNGE, and whatever Dovecot, an MDA or `mv` in `cur/` did,
//! found by the existing sync) `update_modseqs` (`sync.rs`, with [`Modseqs::update`]) compares each message's
//! flags and keyword bits with the ones its last `m` line recorded; a new or different
//! message takes the next mod-sequence, a recorded UID that is gone (below the uidlist's
//! next UID, so not a message another process numbered after our read) is expunged with the
//! next one. The new lines are appended and `fdatasync`ed before the refresh returns, so
//! before any client is told the value: after `kill -9` (or a power loss) the file holds
//! every value a client saw, and a change made on disk but not yet logged is found again by
//! the next refresh and takes a new, higher value. A last line cut short by a crash is
//! ignored. Cost: one `write` + `fdatasync` per command that changes something (beside the
//! `cur/` fsync a STORE already does); about 20 octets per message and per expunge range.
//!
//! A new log (a folder seen for the first time, or the file deleted) starts at the clock in
//! microseconds, so a recreated log never hands out a value a client already holds; its
//! expunge history starts there.
//!
//! Processes share the file under its dot-lock (`mailserver.modseq.lock`, `dotlock.rs`): a writer first reads what others appended
//! since its last read. When the log is more than twice what a compacted copy would be, it is
//! rewritten (temp, fsync, rename) under that lock; a process holding the old inode notices
//! the rename and reloads. At most [`MAX_RANGES`] expunge ranges are kept: the oldest are
//! dropped and `pruned` says below which mod-sequence the history is incomplete
//! ([`Modseqs::vanished_since`] then says `None`, and IMAP answers with every UID that no
//! longer exists, as RFC 7162 §3.2.5.2 allows).

use super::dotlock::{DotLock, LOCK_TIMEOUT};
use super::fsutil::{file_mode_for, io_err, write_atomic};
use crate::store::Result;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The file's name inside the Maildir.
pub const FILE_NAME: &str = "mailserver.modseq";

/// Expunge ranges kept at most; older ones are dropped (history pruned).
pub const MAX_RANGES: usize = 100_000;

const MAGIC: &str = "mailserver-modseq 1";

/// The folder's mod-sequence state, loaded from the log.
#[derive(Debug, Default)]
pub(super) struct Modseqs {
    /// The UIDVALIDITY the log is for (0: not loaded).
    uid_validity: u32,
    pub(super) highest: u64,
    /// History of expunges is complete above this mod-sequence.
    pruned: u64,
    /// Per UID: (modseq, flags, keyword bits) of its last `m` line.
    known: HashMap<u32, (u64, u8, u32)>,
    /// Expunged `(first, last, modseq)`, in log order.
    expunged: Vec<(u32, u32, u64)>,
    /// The open log, its inode and how far it has been read.
    file: Option<File>,
    ino: u64,
    offset: u64,
}

/// One log line, parsed.
enum Line {
    Header { validity: u32, highest: u64, pruned: u64 },
    Msg { uid: u32, modseq: u64, flags: u8, kw: u32 },
    Gone { first: u32, last: u32, modseq: u64 },
}

fn parse_line(l: &str) -> Option<Line> {
    if let Some(rest) = l.strip_prefix(MAGIC) {
        let mut it = rest.split_ascii_whitespace();
        return Some(Line::Header {
            validity: it.next()?.parse().ok()?,
            highest: it.next()?.parse().ok()?,
            pruned: it.next()?.parse().ok()?,
        });
    }
    let mut it = l.split_ascii_whitespace();
    match it.next()? {
        "m" => Some(Line::Msg {
            uid: it.next()?.parse().ok()?,
            modseq: it.next()?.parse().ok()?,
            flags: it.next()?.parse().ok()?,
            kw: u32::from_str_radix(it.next()?, 16).ok()?,
        }),
        "x" => {
            let set = it.next()?;
            let (a, b) = set.split_once(':').unwrap_or((set, set));
            Some(Line::Gone {
                first: a.parse().ok()?,
                last: b.parse().ok()?,
                modseq: it.next()?.parse().ok()?,
            })
        }
        _ => None,
    }
}

impl Modseqs {
    /// The log is open and caught up (false before the first load and after a failure).
    pub(super) fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Applies complete lines of `text` (a cut-short last line is left for later); returns
    /// the octets used.
    fn apply(&mut self, text: &[u8]) -> usize {
        let mut used = 0;
        while let Some(nl) = memchr::memchr(b'\n', &text[used..]) {
            let line = String::from_utf8_lossy(&text[used..used + nl]);
            used += nl + 1;
            match parse_line(&line) {
                Some(Line::Header {
                    validity,
                    highest,
                    pruned,
                }) => {
                    self.uid_validity = validity;
                    self.highest = self.highest.max(highest);
                    self.pruned = self.pruned.max(pruned);
                }
                Some(Line::Msg {
                    uid,
                    modseq,
                    flags,
                    kw,
                }) => {
                    self.highest = self.highest.max(modseq);
                    self.known.insert(uid, (modseq, flags, kw));
                }
                Some(Line::Gone {
                    first,
                    last,
                    modseq,
                }) => {
                    self.highest = self.highest.max(modseq);
                    self.known.retain(|u, _| *u < first || *u > last);
                    self.expunged.push((first, last, modseq));
                }
                None => tracing::warn!("{FILE_NAME}: ignoring a malformed line {line:?}"),
            }
        }
        used
    }

    /// UIDs expunged after `modseq` (sorted, may repeat); `None` when the history does not
    /// reach back that far.
    pub(super) fn vanished_since(&self, modseq: u64) -> Option<Vec<u32>> {
        if modseq < self.pruned {
            return None;
        }
        let mut out = Vec::new();
        for &(a, b, m) in &self.expunged {
            if m > modseq {
                out.extend(a..=b);
            }
        }
        out.sort_unstable();
        out.dedup();
        Some(out)
    }

    /// The text of a compacted log.
    fn render(&self) -> String {
        let mut s = format!(
            "{MAGIC} {} {} {}\n",
            self.uid_validity, self.highest, self.pruned
        );
        let mut uids: Vec<_> = self.known.iter().collect();
        uids.sort_unstable_by_key(|(u, _)| **u);
        for (uid, (m, f, k)) in uids {
            s.push_str(&format!("m {uid} {m} {f} {k:x}\n"));
        }
        for (a, b, m) in &self.expunged {
            s.push_str(&gone_line(*a, *b, *m));
        }
        s
    }

    fn compacted_len(&self) -> u64 {
        64 + 24 * (self.known.len() as u64 + self.expunged.len() as u64)
    }
}

fn gone_line(a: u32, b: u32, m: u64) -> String {
    if a == b {
        format!("x {a} {m}\n")
    } else {
        format!("x {a}:{b} {m}\n")
    }
}

/// Microseconds since 1970 (1 if the clock is before it).
fn clock_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as u64)
}

/// Groups sorted UIDs into ranges.
fn ranges(uids: &[u32]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &u in uids {
        match out.last_mut() {
            Some((_, b)) if b.checked_add(1) == Some(u) => *b = u,
            _ => out.push((u, u)),
        }
    }
    out
}

impl Modseqs {
    /// Gives every message its mod-sequence, logging the new ones (see the module docs):
    /// `msgs` are the folder's messages as (UID, flags, keyword bits) in UID order, of a
    /// folder with `uid_validity` whose uidlist said `next_uid`; `modseqs` gets theirs, in
    /// the same order. `dir` is the Maildir (the log is [`FILE_NAME`] in it). After an
    /// error the log is reopened next time.
    pub(super) fn update(
        &mut self,
        dir: &Path,
        uid_validity: u32,
        next_uid: u32,
        msgs: &[(u32, u8, u32)],
        modseqs: &mut Vec<u64>,
    ) -> Result<()> {
        let path = dir.join(FILE_NAME);
        if self.unchanged(&path, uid_validity, msgs, modseqs) {
            return Ok(());
        }
        let r = self.update_locked(dir, &path, uid_validity, next_uid, msgs, modseqs);
        if r.is_err() {
            // What is in memory may be ahead of the file: reload it next time.
            self.file = None;
        }
        r
    }

    /// Without the lock, when it can tell nothing is to be logged: the log is the one we
    /// have open, nobody appended to it since our last read (same inode, length = what we
    /// read), and every message is known with the same flags (so none is new, changed or
    /// gone). Then `modseqs` are the known ones, as the locked path would give them; a sync
    /// that finds nothing new takes no dot-lock (a file made and removed per command).
    fn unchanged(
        &self,
        path: &Path,
        uid_validity: u32,
        msgs: &[(u32, u8, u32)],
        modseqs: &mut Vec<u64>,
    ) -> bool {
        if self.file.is_none() || self.uid_validity != uid_validity || self.known.len() != msgs.len()
        {
            return false;
        }
        match std::fs::metadata(path) {
            Ok(m) if m.ino() == self.ino && m.len() == self.offset => {}
            _ => return false,
        }
        let mut out = Vec::with_capacity(msgs.len());
        for &(uid, f, k) in msgs {
            match self.known.get(&uid) {
                Some(&(m, kf, kk)) if kf == f && kk == k => out.push(m),
                _ => return false,
            }
        }
        *modseqs = out;
        true
    }

    fn update_locked(
        &mut self,
        dir: &Path,
        path: &Path,
        uid_validity: u32,
        next_uid: u32,
        msgs: &[(u32, u8, u32)],
        modseqs: &mut Vec<u64>,
    ) -> Result<()> {
        let ms = self;
        modseqs.clear();
        // Never below what this process already handed out for this UIDVALIDITY, even if
        // the file was removed meanwhile.
        let floor = if ms.uid_validity == uid_validity {
            ms.highest
        } else {
            0
        };
        // Lock (the file's dot-lock, `mailserver.modseq.lock`: never an `flock` under
        // data_dir, NFS), open (or reopen after another process compacted the file), catch up.
        let _lock = DotLock::acquire(path, LOCK_TIMEOUT)?;
        loop {
            if ms.file.is_none() || ms.uid_validity != uid_validity {
                *ms = Modseqs::default();
                let f = OpenOptions::new()
                    .read(true)
                    .append(true)
                    .create(true)
                    .mode(file_mode_for(dir))
                    .open(path)
                    .map_err(|e| io_err(e, "open", path))?;
                ms.ino = f.metadata().map_err(|e| io_err(e, "fstat", path))?.ino();
                ms.file = Some(f);
            }
            let on_disk = std::fs::metadata(path).map(|m| m.ino()).ok();
            if on_disk != Some(ms.ino) {
                ms.file = None;
                continue;
            }
            break;
        }
        let file = ms.file.take().expect("opened above");
        let r = (|| {
            let mut tail = Vec::new();
            (&file)
                .seek(SeekFrom::Start(ms.offset))
                .and_then(|_| (&file).read_to_end(&mut tail))
                .map_err(|e| io_err(e, "read", path))?;
            let fresh_file = ms.offset == 0;
            let used = ms.apply(&tail);
            ms.offset += used as u64;
            let mut out = String::new();
            if fresh_file && (ms.uid_validity != uid_validity || used == 0) {
                // No log for this UIDVALIDITY yet: start one. What was expunged before it
                // is unknown, so the history is complete only from here on.
                let highest = if ms.uid_validity == uid_validity {
                    ms.highest.max(floor)
                } else {
                    floor
                };
                // A log made again (deleted, or lost with its folder's UIDVALIDITY kept)
                // must not hand out values a client already holds: start from the clock in
                // microseconds, which no earlier log can have reached one change at a time.
                let start = (highest + 1).max(clock_micros());
                *ms = Modseqs {
                    uid_validity,
                    highest: start,
                    pruned: start,
                    ..Modseqs::default()
                };
                for &(uid, f, k) in msgs {
                    ms.known.insert(uid, (start, f, k));
                    modseqs.push(start);
                }
                write_atomic(path, ms.render().as_bytes())?;
                return Ok(true);
            }
            // Messages that are new or changed.
            let mut next = ms.highest;
            for &(uid, f, k) in msgs {
                match ms.known.get(&uid) {
                    Some(&(m, kf, kk)) if kf == f && kk == k => modseqs.push(m),
                    _ => {
                        next += 1;
                        ms.known.insert(uid, (next, f, k));
                        modseqs.push(next);
                        out.push_str(&format!("m {uid} {next} {f} {k:x}\n"));
                    }
                }
            }
            // Messages that are gone (a UID at or above the uidlist's next UID we read was
            // numbered by another process after our read: not ours to judge yet).
            if ms.known.len() != msgs.len() {
                let present = |u: &u32| msgs.binary_search_by_key(u, |m| m.0).is_ok();
                let mut gone: Vec<u32> = ms
                    .known
                    .keys()
                    .copied()
                    .filter(|u| *u < next_uid && !present(u))
                    .collect();
                if !gone.is_empty() {
                    gone.sort_unstable();
                    next += 1;
                    for (a, b) in ranges(&gone) {
                        out.push_str(&gone_line(a, b, next));
                        ms.expunged.push((a, b, next));
                    }
                    ms.known.retain(|u, _| gone.binary_search(u).is_err());
                }
            }
            if out.is_empty() {
                return Ok(false);
            }
            ms.highest = next;
            (&file)
                .write_all(out.as_bytes())
                .and_then(|()| crate::metrics::get().fsync(|| file.sync_data()))
                .map_err(|e| io_err(e, "write", path))?;
            ms.offset += out.len() as u64;
            if ms.expunged.len() > MAX_RANGES {
                let drop_n = ms.expunged.len() - MAX_RANGES;
                ms.pruned = ms.expunged[..drop_n].iter().map(|e| e.2).max().unwrap_or(0);
                ms.expunged.drain(..drop_n);
            }
            if ms.offset > 2 * ms.compacted_len() + 64 * 1024 {
                write_atomic(path, ms.render().as_bytes())?;
                return Ok(true);
            }
            Ok(false)
        })();
        match r {
            Ok(true) => {
                // Rewritten: reopen the new file at its end next time.
                let f = OpenOptions::new()
                    .read(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| io_err(e, "open", path))?;
                let meta = f.metadata().map_err(|e| io_err(e, "fstat", path))?;
                ms.ino = meta.ino();
                ms.offset = meta.len();
                ms.file = Some(f);
                Ok(())
            }
            Ok(false) => {
                ms.file = Some(file);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_replay_and_cut_lines_wait() {
        let mut ms = Modseqs::default();
        let text = b"mailserver-modseq 1 7 3 2\nm 1 3 0 0\nm 2 4 1 a\nx 1 5\nm 3 6 0";
        let used = ms.apply(text);
        assert_eq!(used, text.len() - "m 3 6 0".len());
        assert_eq!(ms.uid_validity, 7);
        assert_eq!(ms.highest, 5);
        assert_eq!(ms.known.get(&2), Some(&(4, 1, 10)));
        assert!(!ms.known.contains_key(&1));
        assert_eq!(ms.vanished_since(4), Some(vec![1]));
        assert_eq!(ms.vanished_since(5), Some(vec![]));
        assert_eq!(ms.vanished_since(1), None, "history starts at 2");
        let mut again = Modseqs::default();
        again.apply(ms.render().as_bytes());
        assert_eq!(again.known, ms.known);
        assert_eq!(again.expunged, ms.expunged);
        assert_eq!(again.highest, ms.highest);
    }

    #[test]
    fn ranges_group_consecutive_uids() {
        assert_eq!(ranges(&[1, 2, 3, 5, 9, 10]), vec![(1, 3), (5, 5), (9, 10)]);
        assert_eq!(ranges(&[]), vec![]);
    }
}
