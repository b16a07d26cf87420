//! The per-folder cache of data derived from message bytes — IMAP ENVELOPE, BODYSTRUCTURE and
//! BODY, what Dovecot keeps in `dovecot.index.cache` — so `FETCH 1:* ENVELOPE` on a big
//! mailbox reads one file instead of every message.
//!
//! Kept in memory by the folder's shared handle and persisted in `mailserver.cache` next to
//! `dovecot-uidlist`, so it survives the handle being dropped and daemon restarts. A message
//! never changes under its (UIDVALIDITY, UID), so entries are never updated, only added, and
//! dropped when the message is expunged. The file is a cache: losing it, a torn tail, a
//! stale UIDVALIDITY or a failed write only costs re-parsing; it is never fsynced.
//!
//! Format (little-endian): `MSCACHE2` + UIDVALIDITY (u32), then records
//! `uid u32 | field u8 | len u32 | data | fnv1a32 of the preceding fields and data`.
//! Records are appended with one `write` on an `O_APPEND` descriptor (so two processes
//! appending never interleave); the file is rewritten (temp file + rename) when it was
//! unreadable, belonged to another UIDVALIDITY, or holds more dead records than live ones.

use super::fsutil::{file_mode_for, temp_path};
use crate::store::Derived;
use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The cache file's name inside a Maildir folder.
pub const FILE_NAME: &str = "mailserver.cache";
/// Version 2 added SORT/THREAD keys (field 4); a version-1 file is not ours and is
/// rewritten whole (its entries are derived again), never misread.
const MAGIC: &[u8; 8] = b"MSCACHE2";
const HEADER_LEN: usize = 12;
/// `uid + field + len` before the data, the checksum after it.
const RECORD_OVERHEAD: usize = 4 + 1 + 4 + 4;
/// Values longer than this are not cached (a pathological MIME tree is re-parsed instead).
pub const MAX_VALUE: usize = 256 * 1024;
/// Dead records (expunged or duplicated) tolerated before a rewrite, beyond the live count.
const DEAD_SLACK: usize = 1000;

fn field_code(f: Derived) -> u8 {
    match f {
        Derived::Envelope => 1,
        Derived::BodyStructure => 2,
        Derived::Body => 3,
        Derived::SortKeys => 4,
    }
}

fn field_of(code: u8) -> Option<Derived> {
    match code {
        1 => Some(Derived::Envelope),
        2 => Some(Derived::BodyStructure),
        3 => Some(Derived::Body),
        4 => Some(Derived::SortKeys),
        _ => None,
    }
}

/// FNV-1a, 32 bits: enough to tell a torn or foreign tail from a record.
fn fnv1a(parts: &[&[u8]]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for p in parts {
        for &b in *p {
            h ^= b as u32;
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}

fn push_record(out: &mut Vec<u8>, uid: u32, field: Derived, data: &[u8]) {
    let head_at = out.len();
    out.extend_from_slice(&uid.to_le_bytes());
    out.push(field_code(field));
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    let sum = fnv1a(&[&out[head_at..], data]);
    out.extend_from_slice(data);
    out.extend_from_slice(&sum.to_le_bytes());
}

/// What [`parse`] found in a file.
#[derive(Debug, Default)]
pub struct Parsed {
    pub uid_validity: u32,
    pub entries: Vec<(u32, Derived, Arc<[u8]>)>,
    /// The file ended in bytes that are not a whole, valid record.
    pub torn: bool,
}

/// Reads a cache file's bytes; `None` if the header is not ours.
pub fn parse(bytes: &[u8]) -> Option<Parsed> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return None;
    }
    let mut p = Parsed {
        uid_validity: u32::from_le_bytes(bytes[8..12].try_into().ok()?),
        ..Parsed::default()
    };
    let mut i = HEADER_LEN;
    while i < bytes.len() {
        let rest = &bytes[i..];
        if rest.len() < RECORD_OVERHEAD {
            p.torn = true;
            break;
        }
        let uid = u32::from_le_bytes(rest[0..4].try_into().ok()?);
        let len = u32::from_le_bytes(rest[5..9].try_into().ok()?) as usize;
        let (Some(field), true) = (field_of(rest[4]), len <= MAX_VALUE) else {
            p.torn = true;
            break;
        };
        if rest.len() < RECORD_OVERHEAD + len {
            p.torn = true;
            break;
        }
        let data = &rest[9..9 + len];
        let sum = u32::from_le_bytes(rest[9 + len..13 + len].try_into().ok()?);
        if sum != fnv1a(&[&rest[..9], data]) {
            p.torn = true;
            break;
        }
        p.entries.push((uid, field, Arc::from(data)));
        i += RECORD_OVERHEAD + len;
    }
    Some(p)
}

/// A cache's contents, parked while its folder has no handle (see `parked::Parked`).
#[derive(Default)]
pub struct Inner {
    /// The UIDVALIDITY `map` belongs to; `None` until loaded.
    loaded_for: Option<u32>,
    map: HashMap<(u32, Derived), Arc<[u8]>>,
    /// Records in the file (live, dead and duplicates).
    file_records: usize,
    /// The file must be rewritten whole before appending (missing, foreign, torn, bloated).
    rewrite: bool,
    /// A write failed: keep the cache in memory only (reported once).
    broken: bool,
}

/// One folder's derived-data cache (see the module docs).
pub struct DerivedCache {
    path: PathBuf,
    inner: Mutex<Inner>,
}

impl DerivedCache {
    pub fn new(dir: &Path) -> DerivedCache {
        DerivedCache::with(dir, Inner::default())
    }

    /// A cache that starts from contents parked by an earlier handle of the same folder.
    pub fn with(dir: &Path, inner: Inner) -> DerivedCache {
        DerivedCache {
            path: dir.join(FILE_NAME),
            inner: Mutex::new(inner),
        }
    }

    /// Forgets everything in memory (`force-resync`, after the file was removed): the next
    /// lookup loads the file again, or rebuilds it.
    pub fn reset(&self) {
        *self.lock() = Inner::default();
    }

    /// Takes the contents out (the handle is going away).
    pub fn take(&mut self) -> Inner {
        std::mem::take(self.inner.get_mut().unwrap_or_else(|p| p.into_inner()))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entry if the cache is loaded for `uid_validity`; `Err(())` if it is not (then
    /// call [`DerivedCache::load`]). One lock per lookup: this runs for every message of a
    /// big FETCH.
    #[allow(clippy::result_unit_err)]
    pub fn get_loaded(
        &self,
        uid_validity: u32,
        uid: u32,
        field: Derived,
    ) -> Result<Option<Arc<[u8]>>, ()> {
        let g = self.lock();
        if g.loaded_for != Some(uid_validity) {
            return Err(());
        }
        Ok(g.map.get(&(uid, field)).cloned())
    }

    /// Loads the file for `uid_validity`, keeping only entries of `live` UIDs (sorted).
    pub fn load(&self, uid_validity: u32, live: &[u32]) {
        let mut g = self.lock();
        if g.loaded_for == Some(uid_validity) {
            return;
        }
        let broken = g.broken;
        *g = Inner {
            loaded_for: Some(uid_validity),
            broken,
            rewrite: true,
            ..Inner::default()
        };
        let bytes = match super::fsutil::read_file(&self.path) {
            Ok(b) => b,
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!("{}: cannot read: {e}", self.path.display());
                }
                return;
            }
        };
        let Some(p) = parse(&bytes) else {
            tracing::warn!(
                "{}: not a cache file, it will be rewritten",
                self.path.display()
            );
            return;
        };
        if p.uid_validity != uid_validity {
            return; // another UIDVALIDITY: every entry is stale
        }
        g.file_records = p.entries.len();
        for (uid, field, data) in p.entries {
            if live.binary_search(&uid).is_ok() {
                g.map.insert((uid, field), data);
            }
        }
        let dead = g.file_records - g.map.len();
        g.rewrite = p.torn || dead > g.map.len() + DEAD_SLACK;
    }

    pub fn get(&self, uid: u32, field: Derived) -> Option<Arc<[u8]>> {
        self.lock().map.get(&(uid, field)).cloned()
    }

    /// [`DerivedCache::get`] of many UIDs under one lock (loaded for `uid_validity`, else
    /// `Err(())` as [`DerivedCache::get_loaded`]).
    #[allow(clippy::result_unit_err)]
    pub fn get_many(
        &self,
        uid_validity: u32,
        uids: &[u32],
        field: Derived,
    ) -> Result<Vec<Option<Arc<[u8]>>>, ()> {
        let g = self.lock();
        if g.loaded_for != Some(uid_validity) {
            return Err(());
        }
        Ok(uids.iter().map(|&u| g.map.get(&(u, field)).cloned()).collect())
    }

    /// Adds entries (for the loaded UIDVALIDITY) and persists them; failures are logged once.
    pub fn put(&self, uid_validity: u32, entries: Vec<(u32, Derived, Arc<[u8]>)>) {
        let mut g = self.lock();
        if g.loaded_for != Some(uid_validity) {
            return;
        }
        let mut out = Vec::new();
        let mut added = 0;
        for (uid, field, data) in entries {
            if data.len() > MAX_VALUE || g.map.contains_key(&(uid, field)) {
                continue;
            }
            push_record(&mut out, uid, field, &data);
            g.map.insert((uid, field), data);
            added += 1;
        }
        if out.is_empty() || g.broken {
            return;
        }
        let result = if g.rewrite {
            self.rewrite(&g, uid_validity).map(|n| {
                g.file_records = n;
                g.rewrite = false;
            })
        } else {
            self.append(&out).map(|()| g.file_records += added)
        };
        if let Err(e) = result {
            tracing::warn!(
                "{}: cannot write the cache ({e}); keeping it in memory only",
                self.path.display()
            );
            g.broken = true;
        }
    }

    /// Forgets expunged messages (their records die in the file until the next rewrite).
    pub fn remove(&self, uids: &[u32]) {
        let mut g = self.lock();
        if g.map.is_empty() {
            return;
        }
        for &uid in uids {
            for f in [Derived::Envelope, Derived::BodyStructure, Derived::Body] {
                g.map.remove(&(uid, f));
            }
        }
    }

    fn append(&self, records: &[u8]) -> io::Result<()> {
        let mut f = OpenOptions::new().append(true).open(&self.path)?;
        f.write_all(records)
    }

    /// Writes every live entry to a temp file and renames it over the cache; returns the
    /// number of records written.
    fn rewrite(&self, g: &Inner, uid_validity: u32) -> io::Result<usize> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let mut out = Vec::with_capacity(HEADER_LEN + g.map.len() * 256);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&uid_validity.to_le_bytes());
        let mut keys: Vec<&(u32, Derived)> = g.map.keys().collect();
        keys.sort_unstable_by_key(|k| (k.0, field_code(k.1)));
        for k in &keys {
            push_record(&mut out, k.0, k.1, &g.map[*k]);
        }
        let tmp = temp_path(&self.path);
        let written = (|| {
            let mode = file_mode_for(dir);
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&tmp)?;
            if mode & 0o077 != 0 {
                use std::os::unix::fs::PermissionsExt;
                f.set_permissions(fs::Permissions::from_mode(mode))?;
            }
            f.write_all(&out)?;
            fs::rename(&tmp, &self.path)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map(|()| keys.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(uid: u32, f: Derived, s: &str) -> (u32, Derived, Arc<[u8]>) {
        (uid, f, Arc::from(s.as_bytes()))
    }

    #[test]
    fn a_version_1_file_is_not_read() {
        let mut v1 = b"MSCACHE1".to_vec();
        v1.extend_from_slice(&7u32.to_le_bytes());
        let mut rec = Vec::new();
        push_record(&mut rec, 1, Derived::Envelope, b"(NIL)");
        v1.extend_from_slice(&rec);
        assert!(parse(&v1).is_none());
        let mut v2 = MAGIC.to_vec();
        v2.extend_from_slice(&7u32.to_le_bytes());
        push_record(&mut v2, 1, Derived::SortKeys, b"k");
        let p = parse(&v2).unwrap();
        assert_eq!(p.entries.len(), 1);
        assert_eq!(p.entries[0].1, Derived::SortKeys);
    }

    #[test]
    fn persists_across_handles_and_checks_uidvalidity() {
        let d = tempfile::tempdir().unwrap();
        let c = DerivedCache::new(d.path());
        c.load(7, &[1, 2, 3]);
        c.put(7, vec![entry(1, Derived::Envelope, "(env1)")]);
        c.put(
            7,
            vec![
                entry(2, Derived::Envelope, "(env2)"),
                entry(2, Derived::BodyStructure, "(bs2)"),
            ],
        );
        let again = DerivedCache::new(d.path());
        again.load(7, &[1, 2, 3]);
        assert_eq!(&*again.get(1, Derived::Envelope).unwrap(), b"(env1)");
        assert_eq!(&*again.get(2, Derived::BodyStructure).unwrap(), b"(bs2)");
        assert!(again.get(3, Derived::Envelope).is_none());
        assert!(again.get(2, Derived::Body).is_none());
        // A different UIDVALIDITY sees nothing, and its first write replaces the file.
        let other = DerivedCache::new(d.path());
        other.load(8, &[1, 2, 3]);
        assert!(other.get(1, Derived::Envelope).is_none());
        other.put(8, vec![entry(3, Derived::Envelope, "(new3)")]);
        let p = parse(&fs::read(d.path().join(FILE_NAME)).unwrap()).unwrap();
        assert_eq!(p.uid_validity, 8);
        assert_eq!(p.entries.len(), 1);
    }

    #[test]
    fn expunged_uids_are_dropped_at_load_and_remove() {
        let d = tempfile::tempdir().unwrap();
        let c = DerivedCache::new(d.path());
        c.load(1, &[1, 2]);
        c.put(
            1,
            vec![
                entry(1, Derived::Envelope, "a"),
                entry(2, Derived::Envelope, "b"),
            ],
        );
        c.remove(&[1]);
        assert!(c.get(1, Derived::Envelope).is_none());
        let again = DerivedCache::new(d.path());
        again.load(1, &[2]);
        assert!(again.get(1, Derived::Envelope).is_none());
        assert_eq!(&*again.get(2, Derived::Envelope).unwrap(), b"b");
    }

    #[test]
    fn a_torn_or_garbled_tail_loses_only_itself_at_every_cut() {
        let d = tempfile::tempdir().unwrap();
        let c = DerivedCache::new(d.path());
        c.load(5, &[1, 2, 3]);
        c.put(5, vec![entry(1, Derived::Envelope, "first")]);
        c.put(5, vec![entry(2, Derived::Envelope, "second value")]);
        let full = fs::read(d.path().join(FILE_NAME)).unwrap();
        let first_end = HEADER_LEN + RECORD_OVERHEAD + 5;
        for cut in 0..=full.len() {
            match parse(&full[..cut]) {
                None => assert!(cut < HEADER_LEN),
                Some(p) => {
                    let n = if cut == full.len() {
                        2
                    } else if cut >= first_end {
                        1
                    } else {
                        0
                    };
                    assert_eq!(p.entries.len(), n, "cut {cut}");
                    assert_eq!(
                        p.torn,
                        cut != full.len() && cut != first_end && cut != HEADER_LEN
                    );
                }
            }
        }
        // A flipped data byte fails the checksum; the load rewrites the file afterwards.
        let mut bad = full.clone();
        bad[first_end + 10] ^= 0x20;
        fs::write(d.path().join(FILE_NAME), &bad).unwrap();
        let again = DerivedCache::new(d.path());
        again.load(5, &[1, 2, 3]);
        assert_eq!(&*again.get(1, Derived::Envelope).unwrap(), b"first");
        assert!(again.get(2, Derived::Envelope).is_none());
        again.put(5, vec![entry(3, Derived::Body, "third")]);
        let p = parse(&fs::read(d.path().join(FILE_NAME)).unwrap()).unwrap();
        assert!(!p.torn);
        assert_eq!(p.entries.len(), 2);
    }

    #[test]
    fn a_write_failure_keeps_the_cache_in_memory() {
        let d = tempfile::tempdir().unwrap();
        // The cache path is a directory: reading and writing it fail.
        fs::create_dir(d.path().join(FILE_NAME)).unwrap();
        let c = DerivedCache::new(d.path());
        c.load(1, &[1]);
        c.put(1, vec![entry(1, Derived::Envelope, "x")]);
        assert_eq!(&*c.get(1, Derived::Envelope).unwrap(), b"x");
    }
}
