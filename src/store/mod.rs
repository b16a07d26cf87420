//! The storage API both protocols use (ARCHITECTURE.md, "Mail store"): open a user's tree,
//! list and manage mailboxes, view messages by UID, change flags, append, copy, move, expunge,
//! and `sync` a session's [`View`] with what other sessions and outside deliveries did.
//!
//! Everything here is synchronous file-system work: protocol sessions call it through
//! `tokio::task::spawn_blocking` (or `block_in_place`) so the async runtime never waits on disk.
//! Maildir file names, uidlists and keyword files never leak above this module.

pub mod maildir;
pub mod quota;

use std::sync::Arc;
use std::time::SystemTime;

/// What went wrong, in the few kinds a protocol maps to a reply: an IMAP response code
/// (RFC 5530: `[NONEXISTENT]`, `[OVERQUOTA]`, ...) or POP3's `[SYS/TEMP]` (RFC 3206).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Exists,
    NoPermission,
    /// The disk or the file system's quota is full (`ENOSPC`, `EDQUOT`).
    OverLimit,
    /// The user's own quota (RFC 9208) would be exceeded: LMTP's `552 5.2.2`.
    OverQuota,
    /// A fixed limit of the store (RFC 5530 `[LIMIT]`), e.g. no room for a new keyword.
    Limit,
    Temporary,
    Internal,
}

/// A storage error: the kind for the client, the message for the daemon log.
#[derive(Debug, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// The five system flags kept in the Maildir `:2,` info (`\Recent` is per session, in
/// [`MessageMeta::recent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Flags(pub u8);

impl Flags {
    pub const SEEN: Flags = Flags(1);
    pub const ANSWERED: Flags = Flags(2);
    pub const FLAGGED: Flags = Flags(4);
    pub const DELETED: Flags = Flags(8);
    pub const DRAFT: Flags = Flags(16);
    pub const NONE: Flags = Flags(0);

    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
    pub fn minus(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }
}

/// How `store_flags` combines the given flags with the current ones (IMAP STORE semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Replace,
    Add,
    Remove,
}

/// One message as a session sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageMeta {
    pub uid: u32,
    pub flags: Flags,
    /// IMAP keywords (e.g. `$Forwarded`, `Junk`), as Dovecot's `dovecot-keywords` names them.
    pub keywords: Vec<String>,
    /// Size with CRLF line endings: what RFC822.SIZE, POP3 LIST and [`Mailbox::read`] give.
    pub size: u64,
    /// INTERNALDATE (the file's mtime in Maildir).
    pub internal_date: SystemTime,
    /// `\Recent`: true in exactly one session's view (the first that synced the message).
    pub recent: bool,
    /// The message's mod-sequence (RFC 7162 §3.1.1): the value of the last change to its
    /// flags or keywords, or of its arrival.
    pub modseq: u64,
}

/// STATUS values (RFC 3501 §6.3.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MailboxStatus {
    pub messages: u32,
    pub recent: u32,
    pub uid_next: u32,
    pub uid_validity: u32,
    pub unseen: u32,
    /// RFC 8438 STATUS SIZE: the sum of the messages' RFC822.SIZE.
    pub size: u64,
    /// RFC 9051 STATUS DELETED: messages with `\Deleted`.
    pub deleted: u32,
    /// RFC 7162 §3.1.1 HIGHESTMODSEQ.
    pub highest_modseq: u64,
}

/// RFC 6154 special-use attributes of the folders created for every user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialUse {
    Drafts,
    Sent,
    Trash,
    Junk,
    Archive,
}

/// One entry of a user's mailbox list; `name` is the IMAP name (UTF-8, `/` delimiter).
#[derive(Debug, Clone, PartialEq)]
pub struct MailboxInfo {
    pub name: String,
    pub special_use: Option<SpecialUse>,
    pub subscribed: bool,
    pub has_children: bool,
    /// A hierarchy level that exists only because a child does (`\Noselect`).
    pub no_select: bool,
}

/// A session's own picture of a mailbox: messages in UID order, sequence number = index + 1.
/// Only [`Mailbox::sync`] changes it, so a session decides when it learns of changes.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub uid_validity: u32,
    pub uid_next: u32,
    pub messages: Vec<MessageMeta>,
    /// The mailbox's HIGHESTMODSEQ when the view was synced (RFC 7162 §3.1.1).
    pub highest_modseq: u64,
    /// Sees which messages are `\Recent` without taking them from other sessions: IMAP
    /// EXAMINE (RFC 3501 §6.3.2: it "MUST NOT cause messages to lose the \Recent flag")
    /// and IMAP4rev2 sessions, which have no `\Recent` (RFC 9051). As Dovecot, where only
    /// a rev1 SELECT drops it.
    pub peek_recent: bool,
}

impl View {
    /// Sequence number (1-based) of `uid`, if in the view.
    pub fn seq_of(&self, uid: u32) -> Option<u32> {
        self.messages
            .binary_search_by_key(&uid, |m| m.uid)
            .ok()
            .map(|i| i as u32 + 1)
    }
}

/// What [`Mailbox::sync`] changed in a view, ready to be announced (IMAP EXPUNGE/EXISTS/FETCH).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Sequence numbers to announce as `* n EXPUNGE`, in order, each relative to the view as it
    /// was after the previous one was removed.
    pub expunged: Vec<u32>,
    /// The UIDs of those messages, in the same order (QRESYNC's `VANISHED`, RFC 7162 §3.2.10).
    pub expunged_uids: Vec<u32>,
    /// Number of messages appended at the end of the view.
    pub added: u32,
    /// UIDs (still in the view) whose flags, keywords or mod-sequence changed.
    pub flags_changed: Vec<u32>,
}

/// Data a protocol derives from a message's bytes and lets the store cache by UID (what
/// Dovecot keeps in `dovecot.index.cache`): the encoded IMAP ENVELOPE, BODYSTRUCTURE and BODY,
/// and what SORT and THREAD compare (`imap::sortkey::SortKeys`, encoded).
/// A message never changes under its (UIDVALIDITY, UID), so neither does its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Derived {
    Envelope,
    BodyStructure,
    Body,
    SortKeys,
}

/// A message being saved a piece at a time ([`Mailbox::save_begin`], then
/// [`Mailbox::save_finish`]); dropped before it is saved, it leaves nothing behind.
pub trait NewMessage: Send + Sync {
    /// The next piece of the message as the client sent it (CRLF line endings; a piece may
    /// end between a CR and its LF).
    fn write(&mut self, data: &[u8]) -> Result<()>;
    /// For [`Mailbox::save_finish`] implementations to get their own type back.
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send>;
}

/// The default [`NewMessage`]: the pieces kept in memory.
#[derive(Debug, Default)]
pub struct BufferedMessage(pub Vec<u8>);

impl NewMessage for BufferedMessage {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}

/// A store of users' mail trees.
pub trait Store: Send + Sync {
    /// The tree of `user`, created (INBOX plus the special-use folders) on first use.
    fn user(&self, user: &str) -> Result<Arc<dyn UserStore>>;

    /// Another node of the cluster changed `user`'s `mailbox` (README.md, "Cluster"): wake
    /// this process's sessions that have it open (IDLE, the next NOOP) and make their next
    /// sync rescan. Creates nothing; a folder nobody has open is left alone.
    fn changed_elsewhere(&self, user: &str, mailbox: &str) {
        let _ = (user, mailbox);
    }

    /// The users for whom `gone` says yes are served by another node now: drop what this
    /// process keeps of their folders between sessions (parked sync and derived-data caches,
    /// `\Recent` floors), which would go stale.
    fn forget_users(&self, gone: &dyn Fn(&str) -> bool) {
        let _ = gone;
    }
}

/// One user's mailboxes. Names are IMAP names: UTF-8 with `/` as the hierarchy delimiter,
/// `INBOX` case-insensitive.
pub trait UserStore: Send + Sync {
    fn list(&self) -> Result<Vec<MailboxInfo>>;
    fn create(&self, name: &str) -> Result<()>;
    /// Deletes a mailbox (not INBOX); children stay (RFC 3501 §6.3.4).
    fn delete(&self, name: &str) -> Result<()>;
    /// Renames a mailbox and its children; renaming INBOX moves its messages (RFC 3501 §6.3.5).
    fn rename(&self, from: &str, to: &str) -> Result<()>;
    fn subscribe(&self, name: &str, subscribed: bool) -> Result<()>;
    /// Every subscribed name, whether the mailbox exists or not (RFC 5258 `\NonExistent`).
    fn subscriptions(&self) -> Result<Vec<String>> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|b| b.subscribed)
            .map(|b| b.name)
            .collect())
    }
    fn status(&self, name: &str) -> Result<MailboxStatus>;
    /// Rebuilds what the store derived from a mailbox's files (`mailserver force-resync`, as
    /// `doveadm force-resync`): UIDs and UIDVALIDITY are kept, caches are dropped and rebuilt.
    fn force_resync(&self, name: &str) -> Result<()> {
        self.status(name).map(|_| ())
    }
    /// The user's quota (RFC 9208): limits and usage; `None` when the user has no limits.
    fn quota(&self) -> Result<Option<(quota::Limits, quota::Usage)>> {
        Ok(None)
    }
    /// The shared handle of a mailbox: every session of this process on it gets the same one.
    fn open(&self, name: &str) -> Result<Arc<dyn Mailbox>>;
}

/// [`Mailbox::for_each_header`] by [`Mailbox::read_header`], one message at a time.
pub fn headers_one_by_one<M: Mailbox + ?Sized>(
    mailbox: &M,
    uids: &[u32],
    each: &mut dyn FnMut(usize, Option<&[u8]>) -> bool,
) {
    for (i, &uid) in uids.iter().enumerate() {
        let header = mailbox.read_header(uid).ok();
        if !each(i, header.as_deref()) {
            return;
        }
    }
}

/// One mailbox, shared by all sessions on it.
pub trait Mailbox: Send + Sync {
    /// The IMAP name.
    fn name(&self) -> &str;
    /// Brings `view` up to date (new deliveries in `new/` included) and says what changed.
    /// A fresh `View::default()` gets the whole mailbox.
    fn sync(&self, view: &mut View) -> Result<Changes>;
    /// The raw message with CRLF line endings (`len() == meta.size`).
    fn read(&self, uid: u32) -> Result<Arc<[u8]>>;
    /// The message's header with CRLF line endings, up to and including the empty line that
    /// ends it (all of the message when it has none). A backend reads no more of the file
    /// than that where it can: SORT/THREAD keys of a folder whose cache is cold.
    fn read_header(&self, uid: u32) -> Result<Arc<[u8]>> {
        let raw = self.read(uid)?;
        Ok(raw[..header_len(&raw)].into())
    }
    /// [`Mailbox::read_header`] of each of `uids`, handed to `each` in order with the UID's
    /// index (`None` for a message that is gone); stops when `each` returns `false`. A
    /// backend opens the folder once for the whole batch where it can (a cold SORT or THREAD
    /// reads every header of the folder).
    fn for_each_header(&self, uids: &[u32], each: &mut dyn FnMut(usize, Option<&[u8]>) -> bool) {
        headers_one_by_one(self, uids, each)
    }
    /// Changes flags/keywords of the given UIDs; returns the new metadata of those that exist.
    fn store_flags(
        &self,
        uids: &[u32],
        op: FlagOp,
        flags: Flags,
        keywords: &[String],
    ) -> Result<Vec<MessageMeta>>;
    /// [`Mailbox::store_flags`] for the messages whose mod-sequence is at most `modseq`
    /// (RFC 7162 §3.1.3 UNCHANGEDSINCE), checked and stored under one lock; returns the new
    /// metadata and the UIDs that failed the test. The default checks first, then stores.
    fn store_flags_unchanged_since(
        &self,
        uids: &[u32],
        op: FlagOp,
        flags: Flags,
        keywords: &[String],
        modseq: u64,
    ) -> Result<(Vec<MessageMeta>, Vec<u32>)> {
        let mut view = View::default();
        self.sync(&mut view)?;
        let (ok, failed): (Vec<u32>, Vec<u32>) = uids.iter().partition(|u| {
            view.seq_of(**u)
                .is_none_or(|s| view.messages[s as usize - 1].modseq <= modseq)
        });
        Ok((self.store_flags(&ok, op, flags, keywords)?, failed))
    }
    /// Appends a message (crash-safe: durable before this returns); returns its UID.
    fn append(
        &self,
        data: &[u8],
        flags: Flags,
        keywords: &[String],
        internal_date: Option<SystemTime>,
    ) -> Result<u32>;
    /// Starts saving a message that arrives in pieces ([`NewMessage::write`]), as Dovecot's
    /// `mailbox_save_begin`: a large IMAP APPEND goes to the store as it is read instead of
    /// being held in memory. The default keeps the pieces in memory for [`Mailbox::append`].
    fn save_begin(&self) -> Result<Box<dyn NewMessage>> {
        Ok(Box::new(BufferedMessage::default()))
    }
    /// Saves a message begun with this mailbox's [`Mailbox::save_begin`] as
    /// [`Mailbox::append`] saves one (durable before this returns); returns its UID.
    fn save_finish(
        &self,
        msg: Box<dyn NewMessage>,
        flags: Flags,
        keywords: &[String],
        internal_date: Option<SystemTime>,
    ) -> Result<u32> {
        match msg.into_any().downcast::<BufferedMessage>() {
            Ok(m) => self.append(&m.0, flags, keywords, internal_date),
            Err(_) => Err(Error::new(
                ErrorKind::Internal,
                "save_finish: the message was begun by another kind of mailbox",
            )),
        }
    }
    /// Delivers a message begun with [`Mailbox::save_begin`] as a mail delivery agent does
    /// (LMTP, `mailserver deliver`): no flags, INTERNALDATE = now, durable before this
    /// returns. Maildir puts it into `new/` (tmp → new, as Dovecot's `lmtp` and every MDA)
    /// and leaves numbering it to the next sync, so it returns `None`; the default saves it
    /// as APPEND does and returns its UID.
    fn deliver_finish(&self, msg: Box<dyn NewMessage>) -> Result<Option<u32>> {
        self.save_finish(msg, Flags::NONE, &[], None).map(Some)
    }
    /// Copies messages into `dest` (hard links where possible); returns (source, new) UID pairs.
    fn copy_to(&self, uids: &[u32], dest: &dyn Mailbox) -> Result<Vec<(u32, u32)>>;
    /// Moves messages into `dest`; returns (source, new) UID pairs.
    fn move_to(&self, uids: &[u32], dest: &dyn Mailbox) -> Result<Vec<(u32, u32)>>;
    /// Which of `uids` no longer exist (expunged by another session or process): COPY and
    /// MOVE check first, so a set naming an expunged message copies nothing.
    fn missing(&self, uids: &[u32]) -> Result<Vec<u32>> {
        let mut view = View::default();
        self.sync(&mut view)?;
        Ok(uids
            .iter()
            .copied()
            .filter(|u| view.seq_of(*u).is_none())
            .collect())
    }
    /// Removes messages flagged `\Deleted` (only among `uids` when given); returns their UIDs.
    fn expunge(&self, uids: Option<&[u32]>) -> Result<Vec<u32>>;
    /// Removes exactly these messages whatever their flags (POP3 `DELE` applied at `QUIT`).
    fn remove(&self, uids: &[u32]) -> Result<()>;
    /// A counter that changes whenever the mailbox may have changed (another session, or a
    /// delivery seen by inotify). IDLE waits on it, then calls `sync`.
    fn changes(&self) -> tokio::sync::watch::Receiver<u64>;
    /// UIDs expunged with a mod-sequence above `modseq` (RFC 7162 §3.2.5.2), sorted; `None`
    /// when the store's history does not reach back that far (the caller then treats every
    /// UID not in the mailbox as possibly expunged). The default keeps no history.
    fn vanished_since(&self, modseq: u64) -> Result<Option<Vec<u32>>> {
        let _ = modseq;
        Ok(None)
    }
    /// The cached [`Derived`] data of a message, if any (the default caches nothing).
    fn derived(&self, uid: u32, field: Derived) -> Option<Arc<[u8]>> {
        let _ = (uid, field);
        None
    }
    /// [`Mailbox::derived`] of many messages at once (SORT asks for every message of a
    /// folder: one lock instead of one per message).
    fn derived_many(&self, uids: &[u32], field: Derived) -> Vec<Option<Arc<[u8]>>> {
        uids.iter().map(|&u| self.derived(u, field)).collect()
    }
    /// Whether a keyword new to the mailbox can still be stored, as last seen by `sync`,
    /// `store_flags` or `append` (no I/O). IMAP's PERMANENTFLAGS promises `\*` only then.
    fn keyword_room(&self) -> bool {
        true
    }
    /// Offers derived data for caching: best effort, never fails the caller.
    fn set_derived(&self, entries: Vec<(u32, Derived, Arc<[u8]>)>) {
        let _ = entries;
    }
    /// Used by `copy_to`/`move_to` implementations to reach the destination's backend.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// The length of `raw`'s header up to and including the empty line that ends it (LF or CRLF
/// line endings), or `raw.len()` when there is none.
pub fn header_len(raw: &[u8]) -> usize {
    if raw.starts_with(b"\r\n") {
        return 2;
    }
    if raw.starts_with(b"\n") {
        return 1;
    }
    for lf in memchr::memchr_iter(b'\n', raw) {
        match raw.get(lf + 1) {
            Some(b'\n') => return lf + 2,
            Some(b'\r') if raw.get(lf + 2) == Some(&b'\n') => return lf + 3,
            _ => {}
        }
    }
    raw.len()
}
