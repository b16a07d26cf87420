//! Which inotify events of a folder's `new/` and `cur/` mean another program changed it:
//! not an open or a read (our own readdir, `fsync` of the directory, a FETCH reading a
//! message), and not a rename this process made itself in `cur/` (a STORE), whose events
//! arrive after the cache already holds the change (`restamp_cur` in `sync.rs`).
//!
//! Before this, every such event set the folder's "notified" mark, so the next refresh of
//! any session rescanned the whole folder (a readdir and a merge of every file name: most
//! of a QRESYNC `SELECT` of a 10,000-message folder), and that rescan's own readdir opened
//! `cur/` and set the mark again: a watched folder was rescanned on every refresh.
//!
//! A wrong match never loses a change: after our own rename the cached `cur/` stamp is too
//! fresh to trust, so `refresh` rescans at the latest one `MTIME_SLACK` after its last scan
//! (as before the watcher existed); a match only decides whether that rescan is at once.
//! The table is bounded: when full it is emptied, and the events of the names it forgot
//! count as foreign (a rescan too many, nothing missed).

use super::mutex::lock;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

/// Names remembered at most (each rename adds two).
const MAX_NAMES: usize = 4096;

/// The events one rename within a directory gives on each of its two names: notify's
/// inotify backend reports `Name(From)` for the old name, `Name(To)` for the new one, then
/// `Name(Both)` with the two.
const EVENTS_PER_NAME: u32 = 2;

/// Whether an event of this kind may be a change of the folder: opens and closes after
/// reading are not (a close after writing is, conservatively).
pub(super) fn may_change(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// File name in `cur/` → events still expected for it.
#[derive(Debug, Default)]
pub(super) struct OwnRenames(Mutex<HashMap<Box<str>, u32>>);

impl OwnRenames {
    /// Before renaming `from` to `to` inside `cur/`.
    pub(super) fn expect(&self, from: &str, to: &str) {
        let mut m = lock(&self.0);
        if m.len() + 2 > MAX_NAMES {
            m.clear();
        }
        for n in [from, to] {
            *m.entry(n.into()).or_default() += EVENTS_PER_NAME;
        }
    }

    /// After a rename announced with [`OwnRenames::expect`] failed: no events will come.
    pub(super) fn cancel(&self, from: &str, to: &str) {
        let mut m = lock(&self.0);
        for n in [from, to] {
            if let Some(c) = m.get_mut(n) {
                *c = c.saturating_sub(EVENTS_PER_NAME);
                if *c == 0 {
                    m.remove(n);
                }
            }
        }
    }

    /// Whether `event` (from the watcher of `cur`) is one of ours: a rename event whose
    /// every path is a name in `cur` we expect events for. If so, those are counted off.
    pub(super) fn claim(&self, cur: &Path, event: &notify::Event) -> bool {
        use notify::event::{EventKind, ModifyKind};
        if !matches!(event.kind, EventKind::Modify(ModifyKind::Name(_))) || event.paths.is_empty()
        {
            return false;
        }
        let names: Option<Vec<&str>> = event
            .paths
            .iter()
            .map(|p| {
                if p.parent() == Some(cur) {
                    p.file_name()?.to_str()
                } else {
                    None
                }
            })
            .collect();
        let Some(names) = names else {
            return false;
        };
        let mut m = lock(&self.0);
        if !names.iter().all(|n| m.get(*n).is_some_and(|c| *c > 0)) {
            return false;
        }
        for n in names {
            if let Some(c) = m.get_mut(n) {
                *c -= 1;
                if *c == 0 {
                    m.remove(n);
                }
            }
        }
        true
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.0).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{EventKind, ModifyKind, RenameMode};
    use notify::Event;
    use std::path::PathBuf;

    fn rename_event(mode: RenameMode, paths: &[&Path]) -> Event {
        let mut e = Event::new(EventKind::Modify(ModifyKind::Name(mode)));
        for p in paths {
            e = e.add_path(p.to_path_buf());
        }
        e
    }

    #[test]
    fn our_rename_gives_three_events_all_claimed_then_nothing_is_left() {
        let cur = PathBuf::from("/m/cur");
        let (a, b) = (cur.join("1.x:2,S"), cur.join("1.x:2,FS"));
        let own = OwnRenames::default();
        own.expect("1.x:2,S", "1.x:2,FS");
        assert!(own.claim(&cur, &rename_event(RenameMode::From, &[&a])));
        assert!(own.claim(&cur, &rename_event(RenameMode::To, &[&b])));
        assert!(own.claim(&cur, &rename_event(RenameMode::Both, &[&a, &b])));
        assert_eq!(own.len(), 0);
        // The same rename again, now by another program: foreign.
        assert!(!own.claim(&cur, &rename_event(RenameMode::From, &[&a])));
    }

    #[test]
    fn foreign_names_other_directories_and_other_kinds_are_not_ours() {
        let cur = PathBuf::from("/m/cur");
        let own = OwnRenames::default();
        own.expect("1.x:2,S", "1.x:2,FS");
        let other = cur.join("2.y:2,S");
        assert!(!own.claim(&cur, &rename_event(RenameMode::From, &[&other])));
        // A Both event with one name of ours and one foreign one is foreign, and counts
        // nothing off.
        assert!(!own.claim(
            &cur,
            &rename_event(RenameMode::Both, &[&cur.join("1.x:2,S"), &other])
        ));
        let new = PathBuf::from("/m/new/1.x:2,S");
        assert!(!own.claim(&cur, &rename_event(RenameMode::From, &[&new])));
        let removed = Event::new(EventKind::Remove(notify::event::RemoveKind::File))
            .add_path(cur.join("1.x:2,S"));
        assert!(!own.claim(&cur, &removed));
        assert!(!own.claim(&cur, &rename_event(RenameMode::From, &[])));
        assert_eq!(own.len(), 2);
    }

    #[test]
    fn opens_and_reads_are_not_changes_writes_renames_creates_and_removals_are() {
        use notify::event::{
            AccessKind, AccessMode, CreateKind, DataChange, MetadataKind, RemoveKind,
        };
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
        ] {
            assert!(!may_change(&kind), "{kind:?}");
        }
        for kind in [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Create(CreateKind::File),
            EventKind::Remove(RemoveKind::File),
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
            EventKind::Any,
            EventKind::Other,
        ] {
            assert!(may_change(&kind), "{kind:?}");
        }
    }

    #[test]
    fn a_cancelled_rename_expects_nothing_and_the_table_is_bounded() {
        let cur = PathBuf::from("/m/cur");
        let own = OwnRenames::default();
        own.expect("a", "b");
        own.cancel("a", "b");
        assert_eq!(own.len(), 0);
        assert!(!own.claim(&cur, &rename_event(RenameMode::From, &[&cur.join("a")])));
        for i in 0..10 * MAX_NAMES {
            own.expect(&format!("f{i}"), &format!("t{i}"));
            assert!(own.len() <= MAX_NAMES);
        }
    }
}
