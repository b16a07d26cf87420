//! The inotify watch of one folder's `new/` and `cur/`, on the `inotify` crate directly.
//!
//! Why not the `notify` crate (which `config/watch.rs` still uses): its inotify backend
//! always asks for `IN_OPEN`, so every message file this process opened (a FETCH, a cold
//! SORT or THREAD reading 10,000 headers) queued an event, woke its thread and went through
//! its event conversion, only for `own_renames::may_change` to drop it. Here the kernel is
//! asked only for what can be a change: creation, deletion, renames, writes, attribute
//! changes, and the directory itself going away; opens, reads and read-only closes never
//! reach user space.
//!
//! Events are handed on as `notify` events of the kinds `notify`'s backend made, a rename
//! within a watched directory as `Name(From)`, `Name(To)` and then `Name(Both)` with the two
//! paths (so `own_renames` counts them as before); a lost queue (`IN_Q_OVERFLOW`) as
//! `Other`, which counts as a change.
//!
//! One thread per watch reads the events. Dropping the [`FolderWatch`] removes its watches;
//! the kernel answers each removal with `IN_IGNORED`, which wakes the thread, and the thread
//! ends when every watch is gone (also when the directories are deleted).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use notify::event::{
    AccessKind, AccessMode, CreateKind, EventKind, MetadataKind, ModifyKind, RemoveKind,
    RenameMode,
};

/// What the kernel reports: no `IN_OPEN`, `IN_ACCESS` or `IN_CLOSE_NOWRITE`.
fn mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::CLOSE_WRITE
        | WatchMask::MODIFY
        | WatchMask::ATTRIB
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
}

/// A running watch; see the module docs.
pub(super) struct FolderWatch {
    watches: Watches,
    wds: Vec<WatchDescriptor>,
}

impl std::fmt::Debug for FolderWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolderWatch")
            .field("watches", &self.wds.len())
            .finish()
    }
}

impl FolderWatch {
    /// Watches each of `dirs` that can be watched (a failure is logged and that directory
    /// left out) and calls `on_event` for each event, on the watch's own thread. `Err`
    /// when no inotify instance or thread could be had.
    pub(super) fn start(
        dirs: &[PathBuf],
        mut on_event: impl FnMut(notify::Event) + Send + 'static,
    ) -> io::Result<FolderWatch> {
        let inotify = Inotify::init()?;
        let mut watches = inotify.watches();
        let mut by_wd = HashMap::new();
        for d in dirs {
            match watches.add(d, mask()) {
                Ok(wd) => {
                    by_wd.insert(wd, d.clone());
                }
                Err(e) => tracing::warn!("inotify on {}: {e}", d.display()),
            }
        }
        let wds: Vec<WatchDescriptor> = by_wd.keys().cloned().collect();
        if !by_wd.is_empty() {
            std::thread::Builder::new()
                .name("folder-watch".into())
                .spawn(move || read_loop(inotify, by_wd, &mut on_event))?;
        }
        Ok(FolderWatch { watches, wds })
    }
}

impl Drop for FolderWatch {
    fn drop(&mut self) {
        for wd in self.wds.drain(..) {
            // Fails only when the watch is gone already (its directory was deleted).
            let _ = self.watches.remove(wd);
        }
    }
}

/// Reads events until every watch is removed (or the descriptor fails).
fn read_loop(
    mut inotify: Inotify,
    mut by_wd: HashMap<WatchDescriptor, PathBuf>,
    on_event: &mut dyn FnMut(notify::Event),
) {
    let mut buf = vec![0u8; 16 * 1024];
    // The last `IN_MOVED_FROM` (cookie, path), paired with the `IN_MOVED_TO` after it.
    let mut moved_from: Option<(u32, PathBuf)> = None;
    while !by_wd.is_empty() {
        let events = match inotify.read_events_blocking(&mut buf) {
            Ok(ev) => ev,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!("inotify read: {e}");
                return;
            }
        };
        for ev in events {
            if ev.mask.contains(EventMask::Q_OVERFLOW) {
                on_event(notify::Event::new(EventKind::Other));
                continue;
            }
            if ev.mask.contains(EventMask::IGNORED) {
                by_wd.remove(&ev.wd);
                continue;
            }
            let Some(dir) = by_wd.get(&ev.wd) else {
                continue;
            };
            let path = match ev.name {
                Some(n) => dir.join(n),
                None => dir.clone(),
            };
            for e in translate(ev.mask, ev.cookie, path, &mut moved_from) {
                on_event(e);
            }
        }
    }
}

/// The `notify` events for one inotify event (as `notify`'s inotify backend names them).
fn translate(
    mask: EventMask,
    cookie: u32,
    path: PathBuf,
    moved_from: &mut Option<(u32, PathBuf)>,
) -> Vec<notify::Event> {
    let dir = mask.contains(EventMask::ISDIR);
    let one = |kind: EventKind, p: &Path| vec![notify::Event::new(kind).add_path(p.to_path_buf())];
    if mask.contains(EventMask::MOVED_FROM) {
        let e = one(EventKind::Modify(ModifyKind::Name(RenameMode::From)), &path);
        *moved_from = Some((cookie, path));
        return e;
    }
    if mask.contains(EventMask::MOVED_TO) {
        let mut e = one(EventKind::Modify(ModifyKind::Name(RenameMode::To)), &path);
        if let Some((c, from)) = moved_from.take() {
            if c == cookie {
                e.push(
                    notify::Event::new(EventKind::Modify(ModifyKind::Name(RenameMode::Both)))
                        .add_path(from)
                        .add_path(path),
                );
            }
        }
        return e;
    }
    let kind = if mask.contains(EventMask::CREATE) {
        EventKind::Create(if dir { CreateKind::Folder } else { CreateKind::File })
    } else if mask.contains(EventMask::DELETE) {
        EventKind::Remove(if dir { RemoveKind::Folder } else { RemoveKind::File })
    } else if mask.contains(EventMask::CLOSE_WRITE) {
        EventKind::Access(AccessKind::Close(AccessMode::Write))
    } else if mask.contains(EventMask::MODIFY) {
        EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any))
    } else if mask.contains(EventMask::ATTRIB) {
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any))
    } else if mask.intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF) {
        EventKind::Remove(RemoveKind::Folder)
    } else {
        EventKind::Other
    };
    one(kind, &path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Events until `quiet` passes without one (at most 200).
    fn drain(rx: &mpsc::Receiver<notify::Event>, quiet: Duration) -> Vec<notify::Event> {
        let mut out = Vec::new();
        while let Ok(e) = rx.recv_timeout(quiet) {
            out.push(e);
            if out.len() >= 200 {
                break;
            }
        }
        out
    }

    #[test]
    fn reads_and_opens_are_not_reported_changes_and_renames_are() {
        let dir = tempfile::tempdir().unwrap();
        let cur = dir.path().join("cur");
        std::fs::create_dir(&cur).unwrap();
        std::fs::write(cur.join("a"), b"x").unwrap();
        let (tx, rx) = mpsc::channel();
        let w = FolderWatch::start(std::slice::from_ref(&cur), move |e| {
            let _ = tx.send(e);
        })
        .unwrap();
        // Opening, reading and listing: nothing.
        for _ in 0..20 {
            std::fs::read(cur.join("a")).unwrap();
            std::fs::read_dir(&cur).unwrap().for_each(drop);
        }
        assert!(drain(&rx, Duration::from_millis(300)).is_empty());
        // A rename: From, To, then Both with the two paths.
        std::fs::rename(cur.join("a"), cur.join("b")).unwrap();
        let got = drain(&rx, Duration::from_millis(500));
        let kinds: Vec<_> = got.iter().map(|e| (e.kind, e.paths.clone())).collect();
        assert_eq!(
            kinds,
            [
                (
                    EventKind::Modify(ModifyKind::Name(RenameMode::From)),
                    vec![cur.join("a")]
                ),
                (
                    EventKind::Modify(ModifyKind::Name(RenameMode::To)),
                    vec![cur.join("b")]
                ),
                (
                    EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
                    vec![cur.join("a"), cur.join("b")]
                ),
            ]
        );
        // A new file and a removal.
        std::fs::write(cur.join("c"), b"y").unwrap();
        std::fs::remove_file(cur.join("c")).unwrap();
        let got = drain(&rx, Duration::from_millis(500));
        assert!(matches!(got.first().map(|e| e.kind), Some(EventKind::Create(_))), "{got:?}");
        assert!(matches!(got.last().map(|e| e.kind), Some(EventKind::Remove(_))), "{got:?}");
        drop(w);
        // After the drop the watch is gone: nothing more arrives, and the thread ended
        // (its sender dropped, so the channel disconnects).
        std::fs::write(cur.join("d"), b"z").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Ok(e) => panic!("event after drop: {e:?}"),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    assert!(std::time::Instant::now() < deadline, "watch thread still running");
                }
            }
        }
    }
}
