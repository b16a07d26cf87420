//! Parked handles: a dropped folder handle ([`MaildirMailbox`]) parks its sync cache and its
//! ENVELOPE/BODYSTRUCTURE/BODY cache in the process-wide registry, so the next handle of the
//! same folder (a client reconnecting, a round of STATUS polls) starts warm instead of
//! rescanning `new/` + `cur/` and re-reading `mailserver.cache`. A parked sync cache is still
//! checked against the disk by the usual stamps before use.
//!
//! Dovecot keeps this state on disk instead: the `maildir_index_header` of `dovecot.index`
//! (`maildir-storage.h`, written by `maildir-sync-index.c`) holds the `new/`, `cur/` and
//! uidlist mtimes a later open compares, and `dovecot.index.cache` the parsed data.

use super::cache::DerivedCache;
use super::mailbox::{MaildirMailbox, Parked, Registry, Stamp, State};
use super::mutex::lock;
use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a parked state stays usable (a client reconnecting, a round of STATUS polls).
const PARK_FOR: Duration = Duration::from_secs(60);
/// How many folders' states are parked at most.
const PARK_MAX: usize = 32;

/// Drops parked states that are too old or too many (oldest first).
fn prune(parked: &mut VecDeque<Parked>, now: Instant) {
    while parked.len() > PARK_MAX
        || parked
            .front()
            .is_some_and(|p| now.duration_since(p.at) > PARK_FOR)
    {
        parked.pop_front();
    }
}

/// Forgets the parked state of `dir` (the folder was deleted or renamed).
pub(super) fn unpark(registry: &Registry, dir: &Path) {
    let mut parked = lock(&registry.parked);
    parked.retain(|p| p.dir != dir);
}

/// Forgets everything parked for the folders `gone` picks (their users moved to another
/// node), recent floors included.
pub(super) fn unpark_users(registry: &Registry, gone: &dyn Fn(&Path) -> bool) {
    lock(&registry.parked).retain(|p| !gone(&p.dir));
    lock(&registry.floors).retain(|dir, _| !gone(dir));
}

impl MaildirMailbox {
    /// The caches a dropped handle of `dir` parked, if still usable; cold ones otherwise.
    pub(super) fn take_parked(registry: &Registry, dir: &Path) -> (State, DerivedCache) {
        let now = Instant::now();
        let warm = {
            let mut parked = lock(&registry.parked);
            prune(&mut parked, now);
            parked
                .iter()
                .position(|p| p.dir == dir)
                .and_then(|i| parked.remove(i))
        };
        // Only for the same directory: one deleted and made again has another `cur/` inode.
        let same_dir = |p: &Parked| {
            let now_ino = Stamp::of(&dir.join("cur")).ok().flatten().map(|s| s.ino);
            p.state.stamps.cur.map(|s| s.ino) == now_ino
        };
        match warm.filter(same_dir) {
            Some(p) => (p.state, DerivedCache::with(dir, p.derived)),
            None => (State::default(), DerivedCache::new(dir)),
        }
    }
}

impl Drop for MaildirMailbox {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if !st.loaded {
            return;
        }
        let claimed = st
            .recs
            .iter()
            .rev()
            .find(|r| r.recent_taken)
            .map(|r| r.uid + 1)
            .unwrap_or(0);
        let floor = st.recent_floor.max(claimed);
        if let Ok(mut floors) = self.registry.floors.lock() {
            floors.insert(self.dir.clone(), (st.uid_validity, floor));
        }
        // A user another node owns now: what we would park goes stale there.
        let rule = self.registry.may_park.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let (Some(rule), Some(user)) = (rule, self.user_root.file_name()) {
            if !(rule.0)(&user.to_string_lossy()) {
                return;
            }
        }
        let parked = Parked {
            dir: self.dir.clone(),
            at: Instant::now(),
            state: std::mem::take(st),
            derived: self.derived.take(),
        };
        let mut all = lock(&self.registry.parked);
        all.retain(|p| p.dir != parked.dir);
        all.push_back(parked);
        prune(&mut all, Instant::now());
    }
}
