//! The headers of many messages at once ([`Mailbox::for_each_header`]): what a cold SORT or
//! THREAD reads of a folder whose cache does not have its keys yet.
//!
//! One lock of the folder's state takes every file name; then `cur/` and `new/` are opened
//! once and each message with `openat` relative to them (no path walk from the root per
//! message), into one buffer reused for the whole batch (no allocation, no zeroing per
//! message). A message whose file is not where the names said (renamed by another program,
//! expunged, `ESTALE`) is read again the slow way, [`Mailbox::read_header`], which re-syncs
//! and retries.
//!
//! [`Mailbox::for_each_header`]: crate::store::Mailbox::for_each_header
//! [`Mailbox::read_header`]: crate::store::Mailbox::read_header

use super::crlf::to_crlf_into;
use super::mailbox::MaildirMailbox;
use super::mutex::lock;
use crate::store::Mailbox;
use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Read};

/// First read of a message: most headers fit (the buffer grows, doubling, for those that don't).
const FIRST_READ: usize = 8 * 1024;
/// Largest single read when a header is longer than the first read.
const MAX_READ: usize = 256 * 1024;

/// Where a message's file name lies in the batch's name buffer (its NUL included), and its
/// directory.
#[derive(Clone)]
struct Name {
    span: std::ops::Range<usize>,
    in_new: bool,
}

impl MaildirMailbox {
    /// [`Mailbox::for_each_header`] for a Maildir; see the module docs.
    pub(super) fn headers_batch(
        &self,
        uids: &[u32],
        each: &mut dyn FnMut(usize, Option<&[u8]>) -> bool,
    ) {
        // NUL-terminated names, one buffer for the batch.
        let mut names = Vec::with_capacity(uids.len() * 64);
        let mut at: Vec<Option<Name>> = Vec::with_capacity(uids.len());
        {
            let mut st = lock(&self.state);
            if !st.loaded && self.refresh(&mut st, false).is_err() {
                drop(st);
                return crate::store::headers_one_by_one(self, uids, each);
            }
            for &uid in uids {
                at.push(st.find(uid).map(|i| {
                    let r = &st.recs[i];
                    let start = names.len();
                    names.extend_from_slice(r.fname.as_bytes());
                    names.push(0);
                    Name {
                        span: start..names.len(),
                        in_new: r.in_new,
                    }
                }));
            }
        }
        let cur = File::open(self.dir.join("cur")).ok();
        let new = File::open(self.dir.join("new")).ok();
        let mut buf = Vec::new();
        let mut crlf = Vec::new();
        for (i, name) in at.into_iter().enumerate() {
            let dir = match &name {
                Some(n) if n.in_new => new.as_ref(),
                Some(_) => cur.as_ref(),
                None => None,
            };
            let read = match (name, dir) {
                (Some(n), Some(dir)) => CStr::from_bytes_with_nul(&names[n.span])
                    .ok()
                    .and_then(|fname| read_head_at(dir, fname, &mut buf).ok()),
                _ => None,
            };
            let go_on = match read {
                Some(len) => {
                    to_crlf_into(&buf[..len], &mut crlf);
                    each(i, Some(&crlf))
                }
                // Gone from where the names said, or never known to this handle: the slow
                // way re-syncs and retries (and says `None` if it is really gone).
                None => {
                    let slow = self.read_header(uids[i]).ok();
                    each(i, slow.as_deref())
                }
            };
            if !go_on {
                return;
            }
        }
    }
}

/// Opens `name` in `dir` and reads its header into `buf` (grown, never shrunk, so that a
/// batch zeroes its memory once): the header's length, empty line included, or the whole
/// file's when it has none. Reads no more of the file than the header needs, as
/// `mailbox.rs`'s `read_head`.
fn read_head_at(dir: &File, name: &CStr, buf: &mut Vec<u8>) -> io::Result<usize> {
    let fd = rustix::fs::openat(
        dir,
        name,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC | rustix::fs::OFlags::NOCTTY,
        rustix::fs::Mode::empty(),
    )?;
    let mut file = File::from(fd);
    let mut len = 0;
    let mut chunk = FIRST_READ;
    loop {
        if buf.len() < len + chunk {
            buf.resize(len + chunk, 0);
        }
        let n = file.read(&mut buf[len..len + chunk])?;
        len += n;
        if n == 0 {
            return Ok(len);
        }
        // From the start again: the empty line may straddle two reads (rare: a header is
        // small and the reads double).
        let head = &buf[..len];
        let end = crate::store::header_len(head);
        if end < len || (end == len && super::mailbox::ends_header(head)) {
            return Ok(end);
        }
        chunk = (chunk * 2).min(MAX_READ);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, View};

    /// Every header of the batch equals `read_header`'s, in order, also for messages another
    /// program renamed (flags) or moved back to `new/` after the names were taken, and `None`
    /// for one it deleted and for a UID that never existed.
    #[test]
    fn a_batch_gives_what_read_header_gives_even_for_files_moved_behind_its_back() {
        let tmp = tempfile::tempdir().unwrap();
        let store = super::super::MaildirStore::new(tmp.path().join("mail"));
        store.set_watch(false);
        let user = store.user("bob").unwrap();
        let inbox = user.open("INBOX").unwrap();
        let mut uids = Vec::new();
        for i in 0..20 {
            let lf = if i % 2 == 0 { "\n" } else { "\r\n" };
            let msg = format!("Subject: m{i}{lf}X-N: {i}{lf}{lf}body {i}{lf}");
            uids.push(inbox.append(msg.as_bytes(), Default::default(), &[], None).unwrap());
        }
        inbox.sync(&mut View::default()).unwrap();
        let expected: Vec<Option<Vec<u8>>> =
            uids.iter().map(|&u| inbox.read_header(u).ok().map(|h| h.to_vec())).collect();
        assert!(expected.iter().all(|h| h.as_ref().is_some_and(|h| h.ends_with(b"\r\n\r\n"))));

        // Behind the handle's back: one renamed with a flag, one moved to new/, one deleted.
        let cur = tmp.path().join("mail/bob/cur");
        let files: Vec<_> = std::fs::read_dir(&cur).unwrap().map(|e| e.unwrap().path()).collect();
        let of = |n: usize| {
            let tag = format!("X-N: {n}\r");
            let lf_tag = format!("X-N: {n}\n");
            files
                .iter()
                .find(|p| {
                    let text = std::fs::read_to_string(p).unwrap();
                    text.contains(&tag) || text.contains(&lf_tag)
                })
                .unwrap()
                .clone()
        };
        let (renamed, moved, deleted) = (of(3), of(4), of(5));
        std::fs::rename(&renamed, format!("{}S", renamed.display())).unwrap();
        std::fs::rename(&moved, tmp.path().join("mail/bob/new").join(moved.file_name().unwrap())).unwrap();
        std::fs::remove_file(&deleted).unwrap();

        let mut asked = uids.clone();
        asked.push(uids[19] + 100);
        let mut got: Vec<(usize, Option<Vec<u8>>)> = Vec::new();
        inbox.for_each_header(&asked, &mut |i, h| {
            got.push((i, h.map(<[u8]>::to_vec)));
            true
        });
        assert_eq!(got.len(), asked.len());
        for (n, (i, h)) in got.iter().enumerate() {
            assert_eq!(*i, n);
            match n {
                5 | 20 => assert_eq!(h, &None, "message {n}"),
                _ => assert_eq!(h, &expected[n], "message {n}"),
            }
        }

        // `false` stops the batch.
        let mut calls = 0;
        inbox.for_each_header(&uids, &mut |_, _| {
            calls += 1;
            calls < 3
        });
        assert_eq!(calls, 3);
    }

    #[test]
    fn a_header_is_read_up_to_its_empty_line_whatever_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let d = File::open(dir.path()).unwrap();
        let mut buf = Vec::new();
        let edge = |es: usize| format!("X-Edge: {}\n\n", "e".repeat(es));
        for (head, body) in [
            ("Subject: a\n\n".to_string(), "body\n".repeat(10)),
            ("Subject: b\r\n\r\n".to_string(), "x".repeat(20_000)),
            (format!("X-Long: {}\n\n", "y".repeat(40_000)), "z\n".to_string()),
            // The empty line ends the first read exactly, then straddles it.
            (edge(FIRST_READ - 10), "body".to_string()),
            (edge(FIRST_READ - 9), "body".to_string()),
            ("No-Body: only a header\n".to_string(), String::new()),
        ] {
            let whole = format!("{head}{body}");
            std::fs::write(dir.path().join("m"), &whole).unwrap();
            let n = read_head_at(&d, c"m", &mut buf).unwrap();
            assert_eq!(&buf[..n], head.as_bytes(), "{:?}", &head[..20.min(head.len())]);
        }
        let gone = read_head_at(&d, c"nothing", &mut buf).unwrap_err();
        assert_eq!(gone.kind(), io::ErrorKind::NotFound);
    }
}
