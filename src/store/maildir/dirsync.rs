//! Group commit of a directory fsync: concurrent deliveries into one Maildir's `new/` share
//! one `fsync(new/)` instead of queueing one each behind the journal.
//!
//! **Why it is as safe as one fsync per delivery.** A delivery calls [`DirSync::sync`] after
//! its `rename(2)` into the directory returned. `sync` returns `Ok` only once an fsync of the
//! directory *started* after that call began has completed without error: such an fsync
//! found the rename already in the directory (the rename returned before it was issued), so
//! the rename is as durable as if the delivery had fsynced the directory itself. A
//! delivery never relies on an fsync that was already running when it arrived (it may have
//! been issued before the rename), and a failed fsync covers nobody: each waiter for it
//! tries again with an fsync of its own, and the caller that issued it gets the error.
//!
//! Generations: `started` counts fsyncs issued, `done` is the newest generation completed
//! without error. A caller needs generation `started + 1` (as read when it arrives): the next
//! fsync to start. If none is running it issues it; else it waits for the running one to
//! end and checks again (the next one it issues or waits for has the generation it needs).

use std::path::Path;
use std::sync::{Condvar, Mutex};

use super::fsutil::fsync_dir;
use crate::store::Result;

#[derive(Debug, Default)]
struct Gens {
    /// Fsyncs issued so far (the generation of the newest).
    started: u64,
    /// The newest generation that completed without error.
    done: u64,
    running: bool,
}

/// One directory's sync generations (see the module docs).
#[derive(Debug, Default)]
pub(super) struct DirSync {
    gens: Mutex<Gens>,
    ended: Condvar,
}

impl DirSync {
    /// Makes every rename into `dir` that returned before this call durable: returns once
    /// an fsync of `dir` started after this call began has succeeded, issuing one when
    /// none is running. Blocking.
    pub(super) fn sync(&self, dir: &Path) -> Result<()> {
        let mut g = self.gens.lock().unwrap_or_else(|p| p.into_inner());
        let need = g.started + 1;
        // Bounded: each pass either returns or waits for an fsync that ends (or fails) and
        // after at most two fsyncs the generation needed has run.
        loop {
            if g.done >= need {
                return Ok(());
            }
            if !g.running {
                g.running = true;
                g.started += 1;
                let gen = g.started;
                drop(g);
                let r = fsync_dir(dir);
                g = self.gens.lock().unwrap_or_else(|p| p.into_inner());
                g.running = false;
                if r.is_ok() {
                    g.done = g.done.max(gen);
                }
                self.ended.notify_all();
                return r;
            }
            g = self.ended.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn concurrent_callers_all_return_after_a_later_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let ds = Arc::new(DirSync::default());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let ds = ds.clone();
                let d = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        let before = ds.gens.lock().unwrap().started;
                        ds.sync(&d).unwrap();
                        // Returned only after a generation issued after it arrived.
                        assert!(ds.gens.lock().unwrap().done > before);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let g = ds.gens.lock().unwrap();
        assert!(!g.running);
        assert!(g.started >= 1 && g.started <= 160, "{}", g.started);
        assert_eq!(g.done, g.started);
    }

    #[test]
    fn a_failed_fsync_covers_nobody() {
        let ds = DirSync::default();
        let gone = Path::new("/nonexistent/mailserver-dirsync-test");
        assert!(ds.sync(gone).is_err());
        let g = ds.gens.lock().unwrap();
        assert_eq!((g.started, g.done, g.running), (1, 0, false));
    }
}
