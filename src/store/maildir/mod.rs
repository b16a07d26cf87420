//! Maildir++ backend with Dovecot-compatible metadata (ARCHITECTURE.md, "Mail store").
//!
//! Owns the on-disk layout of `data_dir/mail/<user>/`: INBOX at the root (`cur new tmp`),
//! folders as `.Name` directories (IMAP `/` ↔ `.`, names in modified UTF-7, RFC 3501 §5.1.3,
//! see [`mutf7`]), and Dovecot's own files so a tree moves between Dovecot and this server
//! unchanged: `dovecot-uidlist` v3 ([`uidlist`]) with its dot-lock ([`dotlock`]),
//! `dovecot-keywords` ([`keywords`]), `dovecot-uidvalidity`, `subscriptions` (v2:
//! `V\t2\n\n`, then one name a line with hierarchy levels separated by TAB), and Dovecot-style
//! file names ([`filename`]). Message handling and the sync cache live in [`mailbox`] and the
//! private modules beside it (`sync`, `save`, `copy`, `crlf`, `parked`).
//!
//! One [`MaildirStore`] per process: it hands every session the same [`MaildirMailbox`] for a
//! folder (a registry of weak references keyed by path), so the folder is scanned and watched
//! once, however many sessions have it open.

pub mod cache;
mod copy;
mod crlf;
mod dirsync;
pub mod dotlock;
pub mod filename;
pub mod fsutil;
mod headers;
pub mod keywords;
pub mod mailbox;
pub mod modseq;
pub mod mutf7;
mod mutex;
mod own_renames;
mod parked;
pub mod quota;
mod recent;
mod save;
mod sync;
pub mod uidlist;
mod watch;

pub use mailbox::MaildirMailbox;

use crate::store::{
    Error, ErrorKind, Mailbox, MailboxInfo, MailboxStatus, Result, SpecialUse, Store, UserStore,
};
use fsutil::{create_maildir, io_err, write_atomic};
pub use mailbox::{ChangeHook, MarkerRule, UserRule};
use mailbox::Registry;
use mutex::lock;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

/// The folders every user has (RFC 6154 special use), created on first use and subscribed.
pub const DEFAULT_FOLDERS: [(&str, SpecialUse); 5] = [
    ("Drafts", SpecialUse::Drafts),
    ("Sent", SpecialUse::Sent),
    ("Trash", SpecialUse::Trash),
    ("Junk", SpecialUse::Junk),
    ("Archive", SpecialUse::Archive),
];

/// The Maildir++ [`Store`]: users live in `root/<user>/`.
#[derive(Debug)]
pub struct MaildirStore {
    root: PathBuf,
    registry: Arc<Registry>,
}

impl MaildirStore {
    /// `root` is `data_dir/mail`; it is created when missing.
    pub fn new(root: PathBuf) -> MaildirStore {
        MaildirStore {
            root,
            registry: Arc::new(Registry::default()),
        }
    }

    /// Where the users' quota limits come from (none: nobody has limits).
    pub fn set_quota_limits(&self, limits: Arc<dyn crate::store::quota::QuotaLimits>) {
        *self
            .registry
            .quota
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(limits);
    }

    /// Whether open folders get an inotify watcher (the default) that wakes IDLE at once on
    /// another program's change. Off where `data_dir` is shared between hosts: only this
    /// host's writes would be seen (`server.store_watch`).
    pub fn set_watch(&self, on: bool) {
        self.registry.no_watch.store(!on, Ordering::Relaxed);
    }

    /// Which file must exist before any user's tree is opened or created (the `data_dir`
    /// marker, `server.require_data_marker`), asked at every user open: without it `user()`
    /// fails `Temporary`, so a node whose shared mount went away writes nothing into the
    /// bare mount point.
    pub fn require_marker(&self, rule: MarkerRule) {
        *self
            .registry
            .marker
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(rule);
    }

    /// Called after every write of this process to a folder, with the user and the IMAP
    /// name (the cluster publishes it as a change event; README.md, "Cluster").
    pub fn on_change(&self, hook: ChangeHook) {
        *self
            .registry
            .on_change
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    /// Asked when a folder handle is dropped: whether its caches may be parked for the next
    /// session of the user (no: another node owns the user now).
    pub fn park_rule(&self, rule: UserRule) {
        *self
            .registry
            .may_park
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(rule);
    }

    /// `user`'s tree without creating or checking anything; `None` for a name that cannot be
    /// one (it came from the network: a change event).
    fn existing_user(&self, user: &str) -> Option<MaildirUser> {
        valid_user(user).then(|| MaildirUser {
            root: self.root.join(user),
            registry: self.registry.clone(),
        })
    }

    fn check_marker(&self) -> Result<()> {
        let rule = self.registry.marker.read().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(m) = rule.and_then(|r| (r.0)()) else {
            return Ok(());
        };
        match fsutil::retry_estale(|| std::fs::symlink_metadata(&m)) {
            Ok(_) => Ok(()),
            Err(e) => Err(Error::new(
                ErrorKind::Temporary,
                format!(
                    "{}: {e}; server.require_data_marker = true: refusing the store \
                     (is the mail store mounted?)",
                    m.display()
                ),
            )),
        }
    }

    /// The concrete user tree (tests and benches use it to reach Maildir-only helpers).
    pub fn maildir_user(&self, user: &str) -> Result<Arc<MaildirUser>> {
        self.check_marker()?;
        if !valid_user(user) {
            return Err(Error::new(
                ErrorKind::NoPermission,
                format!("invalid user name {user:?}"),
            ));
        }
        let u = MaildirUser {
            root: self.root.join(user),
            registry: self.registry.clone(),
        };
        u.ensure()?;
        Ok(Arc::new(u))
    }
}

impl Store for MaildirStore {
    fn user(&self, user: &str) -> Result<Arc<dyn UserStore>> {
        Ok(self.maildir_user(user)?)
    }

    fn changed_elsewhere(&self, user: &str, mailbox: &str) {
        let Some(dir) = self.existing_user(user).and_then(|u| u.dir_of(mailbox).ok()) else {
            return;
        };
        let open = lock(&self.registry.mailboxes).get(&dir).and_then(Weak::upgrade);
        if let Some(mb) = open {
            mb.poke();
        }
    }

    fn forget_users(&self, gone: &dyn Fn(&str) -> bool) {
        let root = &self.root;
        parked::unpark_users(&self.registry, &|dir: &Path| {
            let user = dir.strip_prefix(root).ok().and_then(|rel| rel.iter().next());
            user.is_some_and(|u| gone(&u.to_string_lossy()))
        });
    }
}

/// One user's Maildir++ tree.
#[derive(Debug)]
pub struct MaildirUser {
    /// `data_dir/mail/<user>`: INBOX, folders and the user-level Dovecot files.
    root: PathBuf,
    registry: Arc<Registry>,
}

/// Whether `user` can name a tree under the root (no path tricks).
fn valid_user(user: &str) -> bool {
    !(user.is_empty()
        || user.starts_with('.')
        || user.contains(['/', '\0', '\r', '\n'])
        || user.len() > 255)
}

/// Splits and checks an IMAP name; returns its levels (INBOX normalised).
fn levels(name: &str) -> Result<Vec<String>> {
    let bad = |why: &str| {
        Error::new(
            ErrorKind::NoPermission,
            format!("invalid mailbox name {name:?}: {why}"),
        )
    };
    let name = name.strip_suffix('/').unwrap_or(name);
    if name.is_empty() {
        return Err(bad("empty"));
    }
    let mut out = Vec::new();
    for (i, level) in name.split('/').enumerate() {
        if level.is_empty() {
            return Err(bad("empty hierarchy level"));
        }
        if level.contains(['.', '\0', '\r', '\n', '\t', '*', '%']) {
            return Err(bad("'.', '*', '%' and control characters are not allowed"));
        }
        if level.starts_with('~') {
            return Err(bad("a level may not start with '~'"));
        }
        if i == 0 && level.eq_ignore_ascii_case("INBOX") {
            out.push("INBOX".to_string());
        } else {
            out.push(level.to_string());
        }
    }
    Ok(out)
}

fn is_inbox(levels: &[String]) -> bool {
    levels.len() == 1 && levels[0] == "INBOX"
}

/// `.Level1.Level2` in modified UTF-7.
fn dir_name(levels: &[String]) -> String {
    let mut s = String::new();
    for l in levels {
        s.push('.');
        s.push_str(&mutf7::encode(l));
    }
    s
}

/// Parses Dovecot's `subscriptions` (v2 tab-separated, or v1 one `/`-name a line) into IMAP
/// names (UTF-8, `/`).
pub fn parse_subscriptions(text: &str) -> BTreeSet<String> {
    let mut lines = text.split('\n');
    let mut out = BTreeSet::new();
    let mut rest: Vec<&str> = Vec::new();
    let mut first = lines.next().unwrap_or("");
    let v2 = first.starts_with("V\t");
    if v2 {
        // Header lines until the empty line.
        for l in lines.by_ref() {
            if l.is_empty() {
                break;
            }
        }
        first = "";
    } else {
        rest.push(first);
    }
    rest.extend(lines);
    let _ = first;
    for line in rest {
        if line.is_empty() {
            continue;
        }
        let raw: Vec<String> = if v2 {
            line.split('\t').map(tab_unescape).collect()
        } else {
            line.split('/').map(str::to_string).collect()
        };
        let levels: Option<Vec<String>> = raw.iter().map(|l| mutf7::decode(l)).collect();
        if let Some(levels) = levels {
            let mut name = levels.join("/");
            if name.eq_ignore_ascii_case("INBOX") {
                name = "INBOX".into();
            }
            out.insert(name);
        }
    }
    out
}

/// Dovecot `str_tabunescape`: `\001` + `1 t r n` → `\001 \t \r \n`.
fn tab_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\u{1}' {
            match it.next() {
                Some('1') => out.push('\u{1}'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('n') => out.push('\n'),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Renders `subscriptions` as Dovecot 2.3 writes it.
pub fn render_subscriptions(names: &BTreeSet<String>) -> String {
    let mut out = String::from("V\t2\n\n");
    for n in names {
        let levels: Vec<String> = n.split('/').map(mutf7::encode).collect();
        out.push_str(&levels.join("\t"));
        out.push('\n');
    }
    out
}

impl MaildirUser {
    /// Maildir directory of an IMAP name (INBOX is the root).
    pub fn dir_of(&self, name: &str) -> Result<PathBuf> {
        let l = levels(name)?;
        Ok(if is_inbox(&l) {
            self.root.clone()
        } else {
            self.root.join(dir_name(&l))
        })
    }

    /// First use: INBOX plus the special-use folders (created when missing, then subscribed).
    fn ensure(&self) -> Result<()> {
        // Private by default, as Dovecot creates mail directories (0700); an existing tree
        // keeps its modes and folders inherit them.
        create_maildir(&self.root, 0o700)?;
        let mut added = Vec::new();
        for (name, _) in DEFAULT_FOLDERS {
            let dir = self.root.join(format!(".{name}"));
            if !dir.exists() {
                match mailbox::create_folder(&dir, &self.root) {
                    Ok(()) => added.push(name.to_string()),
                    Err(e) if e.kind == ErrorKind::Exists => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if !added.is_empty() {
            self.update_subscriptions(|s| {
                s.insert("INBOX".into());
                s.extend(added.iter().cloned());
            })?;
        }
        Ok(())
    }

    fn read_subscriptions(&self) -> Result<BTreeSet<String>> {
        let path = self.root.join("subscriptions");
        match fsutil::retry_estale(|| fs::read_to_string(&path)) {
            Ok(t) => Ok(parse_subscriptions(&t)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeSet::new()),
            Err(e) => Err(io_err(e, "read", &path)),
        }
    }

    fn update_subscriptions(&self, f: impl FnOnce(&mut BTreeSet<String>)) -> Result<()> {
        let _g = lock(&self.registry.subscriptions);
        let mut subs = self.read_subscriptions()?;
        let before = subs.clone();
        f(&mut subs);
        if subs != before || !self.root.join("subscriptions").exists() {
            write_atomic(
                &self.root.join("subscriptions"),
                render_subscriptions(&subs).as_bytes(),
            )?;
        }
        Ok(())
    }

    /// IMAP names of the folders on disk (without INBOX).
    fn folder_names(&self) -> Result<Vec<String>> {
        let rd = fs::read_dir(&self.root).map_err(|e| io_err(e, "readdir", &self.root))?;
        let mut out = Vec::new();
        for e in rd {
            let e = e.map_err(|e| io_err(e, "readdir", &self.root))?;
            let Ok(fname) = e.file_name().into_string() else {
                continue;
            };
            let Some(rest) = fname.strip_prefix('.') else {
                continue;
            };
            if rest.is_empty() || rest.starts_with('.') || !e.path().is_dir() {
                continue;
            }
            let levels: Option<Vec<String>> = rest.split('.').map(mutf7::decode).collect();
            match levels {
                Some(l) if l.iter().all(|x| !x.is_empty()) => out.push(l.join("/")),
                _ => tracing::warn!("{}: not a valid folder name, ignored", e.path().display()),
            }
        }
        Ok(out)
    }

    /// The shared Maildir handle (for Maildir-specific helpers like `status`).
    pub fn open_maildir(&self, name: &str) -> Result<Arc<MaildirMailbox>> {
        let l = levels(name)?;
        let dir = self.dir_of(name)?;
        if !dir.join("cur").is_dir() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("mailbox {name:?} does not exist ({})", dir.display()),
            ));
        }
        let mut map = lock(&self.registry.mailboxes);
        if let Some(mb) = map.get(&dir).and_then(Weak::upgrade) {
            return Ok(mb);
        }
        map.retain(|_, w| w.strong_count() > 0);
        let mb = Arc::new(MaildirMailbox::new(
            l.join("/"),
            dir.clone(),
            self.root.clone(),
            self.registry.clone(),
        ));
        map.insert(dir, Arc::downgrade(&mb));
        Ok(mb)
    }

    /// Forgets shared handles under `dir` (after a rename or delete).
    fn forget(&self, dir: &Path) {
        let mut map = lock(&self.registry.mailboxes);
        map.remove(dir);
        drop(map);
        parked::unpark(&self.registry, dir);
        let mut floors = lock(&self.registry.floors);
        floors.remove(dir);
    }
}

impl UserStore for MaildirUser {
    fn list(&self) -> Result<Vec<MailboxInfo>> {
        let subs = self.read_subscriptions()?;
        let mut names: BTreeMap<String, bool> = BTreeMap::new(); // name -> selectable
        names.insert("INBOX".into(), true);
        for n in self.folder_names()? {
            // A `.Name` directory that is not a Maildir (no cur/) cannot be selected.
            let selectable = self.dir_of(&n).is_ok_and(|d| d.join("cur").is_dir());
            names.insert(n, selectable);
        }
        let existing: Vec<String> = names.keys().cloned().collect();
        for n in &existing {
            let parts: Vec<&str> = n.split('/').collect();
            for k in 1..parts.len() {
                names.entry(parts[..k].join("/")).or_insert(false);
            }
        }
        let all: Vec<String> = names.keys().cloned().collect();
        let mut out: Vec<MailboxInfo> = names
            .iter()
            .map(|(name, &selectable)| {
                let prefix = format!("{name}/");
                MailboxInfo {
                    name: name.clone(),
                    special_use: DEFAULT_FOLDERS
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, u)| *u),
                    subscribed: subs.contains(name),
                    has_children: all.iter().any(|o| o.starts_with(&prefix)),
                    no_select: !selectable,
                }
            })
            .collect();
        out.sort_by(|a, b| (a.name != "INBOX", &a.name).cmp(&(b.name != "INBOX", &b.name)));
        Ok(out)
    }

    fn create(&self, name: &str) -> Result<()> {
        let l = levels(name)?;
        if is_inbox(&l) {
            return Err(Error::new(ErrorKind::Exists, "INBOX always exists"));
        }
        mailbox::create_folder(&self.root.join(dir_name(&l)), &self.root)
    }

    fn delete(&self, name: &str) -> Result<()> {
        let l = levels(name)?;
        if is_inbox(&l) {
            return Err(Error::new(
                ErrorKind::NoPermission,
                "INBOX cannot be deleted",
            ));
        }
        let dir = self.root.join(dir_name(&l));
        if !dir.is_dir() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("mailbox {name:?} does not exist"),
            ));
        }
        // Rename out of sight first (atomic), then remove: a crash leaves only hidden junk.
        let trash = self
            .root
            .join(format!("..deleted.{:016x}", rand::random::<u64>()));
        fs::rename(&dir, &trash).map_err(|e| io_err(e, "rename", &dir))?;
        self.forget(&dir);
        // Another node's sessions on it are woken to find it gone.
        self.registry.changed(&self.root, name);
        fs::remove_dir_all(&trash).map_err(|e| io_err(e, "rmdir", &trash))?;
        // Its messages no longer count: recount (as Dovecot's quota on a deleted mailbox).
        let limits = self.registry.limits(&self.root);
        if !limits.is_unlimited() || self.root.join(quota::FILE).exists() {
            quota::recalculate(&self.root, limits)?;
        }
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> Result<()> {
        let lf = levels(from)?;
        let lt = levels(to)?;
        let to_dir = self.root.join(dir_name(&lt));
        let from_dir = self.root.join(dir_name(&lf));
        let from_prefix = format!("{}/", lf.join("/"));
        let children: Vec<String> = if is_inbox(&lf) {
            Vec::new()
        } else {
            self.folder_names()?
                .into_iter()
                .filter(|n| n.starts_with(&from_prefix))
                .collect()
        };
        // The source first, as Dovecot: renaming what does not exist is NONEXISTENT
        // whatever the new name.
        if !is_inbox(&lf) && !from_dir.is_dir() && children.is_empty() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("mailbox {from:?} does not exist"),
            ));
        }
        if is_inbox(&lt) || to_dir.exists() {
            return Err(Error::new(ErrorKind::Exists, format!("{to:?} exists")));
        }
        if lt.len() > lf.len() && lt[..lf.len()] == lf[..] {
            return Err(Error::new(
                ErrorKind::NoPermission,
                "cannot rename a mailbox under itself",
            ));
        }
        if is_inbox(&lf) {
            // RFC 3501 §6.3.5: INBOX's messages move to the new name; INBOX stays, empty.
            self.create(to)?;
            let src = self.open_maildir("INBOX")?;
            let dst = self.open_maildir(to)?;
            let mut view = crate::store::View::default();
            src.sync(&mut view)?;
            let uids: Vec<u32> = view.messages.iter().map(|m| m.uid).collect();
            src.move_to(&uids, &*dst)?;
            return Ok(());
        }
        let new_name = lt.join("/");
        let mut renamed = Vec::new();
        if from_dir.is_dir() {
            fs::rename(&from_dir, &to_dir).map_err(|e| io_err(e, "rename", &from_dir))?;
            self.forget(&from_dir);
            self.registry.changed(&self.root, from);
            renamed.push((lf.join("/"), new_name.clone()));
        } else if children.is_empty() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("mailbox {from:?} does not exist"),
            ));
        }
        // A \Noselect level (children only) renames its children.
        for child in children {
            let tail = &child[from_prefix.len()..];
            let new_child = format!("{new_name}/{tail}");
            let a = self.root.join(dir_name(&levels(&child)?));
            let b = self.root.join(dir_name(&levels(&new_child)?));
            fs::rename(&a, &b).map_err(|e| io_err(e, "rename", &a))?;
            self.forget(&a);
            renamed.push((child, new_child));
        }
        fsutil::fsync_dir(&self.root)?;
        self.update_subscriptions(|s| {
            for (old, new) in &renamed {
                if s.remove(old) {
                    s.insert(new.clone());
                }
            }
        })
    }

    fn subscribe(&self, name: &str, subscribed: bool) -> Result<()> {
        let name = levels(name)?.join("/");
        self.update_subscriptions(|s| {
            if subscribed {
                s.insert(name);
            } else {
                s.remove(&name);
            }
        })
    }

    fn subscriptions(&self) -> Result<Vec<String>> {
        Ok(self.read_subscriptions()?.into_iter().collect())
    }

    fn status(&self, name: &str) -> Result<MailboxStatus> {
        self.open_maildir(name)?.status()
    }

    fn force_resync(&self, name: &str) -> Result<()> {
        let dir = self.dir_of(name)?;
        if !dir.join("cur").is_dir() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("mailbox {name:?} does not exist ({})", dir.display()),
            ));
        }
        // The state a dropped handle parked, then the cache file: both rebuilt from the files.
        parked::unpark(&self.registry, &dir);
        let file = dir.join(cache::FILE_NAME);
        match fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e, "remove", &file)),
        }
        self.open_maildir(name)?.force_resync()
    }

    fn open(&self, name: &str) -> Result<Arc<dyn Mailbox>> {
        Ok(self.open_maildir(name)?)
    }

    fn quota(&self) -> Result<Option<(crate::store::quota::Limits, crate::store::quota::Usage)>> {
        let limits = self.registry.limits(&self.root);
        if limits.is_unlimited() {
            return Ok(None);
        }
        Ok(Some((limits, quota::usage(&self.root, limits)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_hooks_see_writes_wake_sessions_and_keep_moved_users_unparked() {
        let tmp = tempfile::tempdir().unwrap();
        let store = MaildirStore::new(tmp.path().join("mail"));
        store.set_watch(false);
        let seen: Arc<std::sync::Mutex<Vec<(String, String)>>> = Arc::default();
        let s2 = seen.clone();
        store.on_change(ChangeHook(Arc::new(move |u, m| {
            s2.lock().unwrap().push((u.into(), m.into()))
        })));
        let owned = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let o2 = owned.clone();
        store.park_rule(UserRule(Arc::new(move |_| o2.load(Ordering::Relaxed))));

        let user = store.user("bob").unwrap();
        let inbox = user.open("INBOX").unwrap();
        let mut rx = inbox.changes();
        rx.mark_unchanged();
        inbox
            .append(b"Subject: x\r\n\r\nbody\r\n", Default::default(), &[], None)
            .unwrap();
        assert!(seen.lock().unwrap().contains(&("bob".into(), "INBOX".into())));
        assert!(rx.has_changed().unwrap());

        // Another node's change: the open handle wakes; an unknown folder or user is ignored.
        rx.mark_unchanged();
        store.changed_elsewhere("bob", "inbox");
        assert!(rx.has_changed().unwrap());
        store.changed_elsewhere("bob", "Nope");
        store.changed_elsewhere("../x", "INBOX");

        // Dropped while owned: parked; forgotten once the user moves.
        let mut view = crate::store::View::default();
        inbox.sync(&mut view).unwrap();
        drop(inbox);
        let parked = || lock(&store.registry.parked).len();
        assert_eq!(parked(), 1);
        store.forget_users(&|u| u == "alice");
        assert_eq!(parked(), 1);
        store.forget_users(&|u| u == "bob");
        assert_eq!(parked(), 0);
        // Not owned: a dropped handle parks nothing.
        owned.store(false, Ordering::Relaxed);
        let inbox = user.open("INBOX").unwrap();
        inbox.sync(&mut view).unwrap();
        drop(inbox);
        assert_eq!(parked(), 0);
        // DELETE publishes the old name.
        user.create("Old").unwrap();
        user.delete("Old").unwrap();
        assert!(seen.lock().unwrap().contains(&("bob".into(), "Old".into())));
    }

    #[test]
    fn names_map_to_dirs() {
        assert_eq!(dir_name(&levels("A/B").unwrap()), ".A.B");
        assert_eq!(dir_name(&levels("Caf\u{e9}/x").unwrap()), ".Caf&AOk-.x");
        assert_eq!(levels("inbox").unwrap(), vec!["INBOX"]);
        assert_eq!(levels("Inbox/Sub").unwrap(), vec!["INBOX", "Sub"]);
        assert_eq!(levels("Trash/").unwrap(), vec!["Trash"]);
        for bad in ["", "/", "a//b", "a.b", "a/*", "~x", "/a"] {
            assert!(levels(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn subscriptions_match_dovecot() {
        // Exactly what Dovecot 2.3.19 wrote in the side-by-side probe.
        let dovecot = "V\t2\n\nDrafts\nA\tB\n&AOk-t&AOk-\tx\nINBOX\n";
        let subs = parse_subscriptions(dovecot);
        let want: BTreeSet<String> = ["Drafts", "A/B", "\u{e9}t\u{e9}/x", "INBOX"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(subs, want);
        let text = render_subscriptions(&subs);
        assert!(text.starts_with("V\t2\n\n"));
        assert_eq!(parse_subscriptions(&text), want);
        assert!(text.contains("\n&AOk-t&AOk-\tx\n"));
        // Version 1: plain names.
        let v1 = parse_subscriptions("INBOX\nA/B\n");
        assert!(v1.contains("A/B") && v1.contains("INBOX"));
        assert_eq!(tab_unescape("a\u{1}tb\u{1}1"), "a\tb\u{1}");
    }
}
