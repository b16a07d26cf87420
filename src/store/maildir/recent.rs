//! `\Recent` across sessions and processes (RFC 3501 §2.3.2: a message is recent in the
//! first session that sees it, and in no other).
//!
//! The folder keeps the first UID no session has taken as `\Recent` yet — its "recent
//! floor" — in `mailserver.recent` beside `dovecot-uidlist`: `<uidvalidity> <floor>\n`.
//! Dovecot keeps the same number in the header of `dovecot.index` (`first_recent_uid`). A
//! view that syncs messages at or above the floor takes them, under the file's dot-lock, and
//! moves the floor past them, so two sessions never both get a message as `\Recent`,
//! whether they run in one process (the handle's `recent_taken` marks) or in two; a
//! message counts whichever way it arrived (APPEND, COPY, MOVE, a file another program put
//! into `new/` or `cur/`). STATUS RECENT counts what is at or above the floor.
//!
//! The file is advisory and written without `fsync`: a crash can at worst show a message
//! as `\Recent` once more. It is created when a folder is first loaded (the floor then is
//! the uidlist's next UID, or 1 for a folder without one, so a new folder's first messages
//! are recent), and a file for another UIDVALIDITY counts as absent.

use super::dotlock::{DotLock, LOCK_TIMEOUT};
use super::fsutil::io_err;
use crate::store::Result;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The file's name inside the Maildir.
pub const FILE_NAME: &str = "mailserver.recent";

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// `(uidvalidity, floor)` from the file's text, if it is well formed.
fn parse(text: &str) -> Option<(u32, u32)> {
    let mut it = text.split_ascii_whitespace();
    let v = it.next()?.parse().ok()?;
    let f = it.next()?.parse().ok()?;
    Some((v, f))
}

/// The floor the file records for `validity` (`None`: no file, another UIDVALIDITY, or
/// unreadable). Read without the lock: writers replace the whole short text at once.
pub(super) fn read_floor(dir: &Path, validity: u32) -> Option<u32> {
    let text = std::fs::read_to_string(path(dir)).ok()?;
    parse(&text).filter(|(v, _)| *v == validity).map(|(_, f)| f)
}

/// The file, open and locked (its dot-lock, `mailserver.recent.lock`: never an `flock`
/// under `data_dir`, which NFS may not share between hosts) until dropped.
struct Locked(File, #[allow(dead_code)] DotLock);

impl Locked {
    fn open(dir: &Path) -> Result<Locked> {
        let p = path(dir);
        let lock = DotLock::acquire(&p, LOCK_TIMEOUT)?;
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)
            .map_err(|e| io_err(e, "open", &p))?;
        Ok(Locked(f, lock))
    }

    fn floor(&mut self, validity: u32) -> Option<u32> {
        let mut text = String::new();
        self.0.seek(SeekFrom::Start(0)).ok()?;
        self.0.read_to_string(&mut text).ok()?;
        parse(&text).filter(|(v, _)| *v == validity).map(|(_, f)| f)
    }

    fn write(&mut self, dir: &Path, validity: u32, floor: u32) -> Result<()> {
        let text = format!("{validity} {floor}\n");
        let p = path(dir);
        (|| {
            self.0.set_len(0)?;
            self.0.seek(SeekFrom::Start(0))?;
            self.0.write_all(text.as_bytes())
        })()
        .map_err(|e| io_err(e, "write", &p))
    }
}

/// At a folder's first load: the recorded floor, or `initial` recorded as the floor when
/// there is none yet for `validity`.
pub(super) fn load(dir: &Path, validity: u32, initial: u32) -> Result<u32> {
    if let Some(f) = read_floor(dir, validity) {
        return Ok(f);
    }
    let mut file = Locked::open(dir)?;
    match file.floor(validity) {
        Some(f) => Ok(f),
        None => {
            file.write(dir, validity, initial)?;
            Ok(initial)
        }
    }
}

/// Takes `\Recent` for the messages below `next` (the UID after the last one a view is
/// about to get): returns the floor before the claim — the view's messages at or above it
/// are recent there — and records `next` as the new floor.
pub(super) fn claim(dir: &Path, validity: u32, known_floor: u32, next: u32) -> Result<u32> {
    let mut file = Locked::open(dir)?;
    let floor = file.floor(validity).unwrap_or(0).max(known_floor);
    if next > floor {
        file.write(dir, validity, next)?;
    }
    Ok(floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_are_per_uidvalidity_and_only_grow() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read_floor(d.path(), 7), None);
        assert_eq!(load(d.path(), 7, 1).unwrap(), 1);
        assert_eq!(load(d.path(), 7, 5).unwrap(), 1, "an existing floor wins");
        // A view takes UIDs 1..=3: it gets them (floor was 1), the floor moves to 4.
        assert_eq!(claim(d.path(), 7, 1, 4).unwrap(), 1);
        assert_eq!(read_floor(d.path(), 7), Some(4));
        // A second process that still believes the floor is 1 gets nothing below 4.
        assert_eq!(claim(d.path(), 7, 1, 4).unwrap(), 4);
        assert_eq!(claim(d.path(), 7, 1, 2).unwrap(), 4);
        assert_eq!(read_floor(d.path(), 7), Some(4));
        // Another UIDVALIDITY: the old floor means nothing.
        assert_eq!(read_floor(d.path(), 8), None);
        assert_eq!(load(d.path(), 8, 9).unwrap(), 9);
        assert_eq!(parse("junk"), None);
    }
}
