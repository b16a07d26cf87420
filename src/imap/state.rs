//! What an IMAP session is and what every command handler may use (RFC 3501 §3): the
//! [`ImapSession`] struct with its [`State`] enum, the result types of handlers ([`Fail`],
//! [`Res`]), the tagged completion with the announcements a command allows (§7.4.1:
//! `EXPUNGE`, `EXISTS`, `RECENT`, `FETCH FLAGS`), and the FETCH in progress.
//!
//! Layering: this module is below the handlers (`cmd/`) and the command table
//! (`commands.rs`), which use it; the session's driver-facing side (assembling commands
//! from lines and literals, the `Session` impl) is `session.rs`, above them all.

use std::collections::VecDeque;
use std::sync::Arc;

use imap_codec::imap_types::fetch::MessageDataItemName;
use tokio::sync::watch;

use super::decode;
use super::flags::{flags_list, write_flags};
use crate::session::{Output, SessionEnv, Step};
use crate::store::{self, Changes, Mailbox, MessageMeta, NewMessage, UserStore, View};

/// Consecutive `BAD` replies after which the session says `* BYE` and closes (as Dovecot).
pub const MAX_BAD_COMMANDS: u32 = 10;

/// Largest whole command before login — every line, CRLF and literal of it — and so also
/// the longest line and literal then (ARCHITECTURE.md, "Limits"). An unauthenticated client
/// cannot make the server buffer more than this per connection (Dovecot's login processes
/// allow a few KiB as well). 8 KiB holds any real LOGIN, and an `AUTHENTICATE PLAIN` with
/// SASL-IR (RFC 4959) for a 255-octet user and a 4 KiB password is under 6 KiB of base64.
pub const MAX_COMMAND_BEFORE_LOGIN: u64 = 8 * 1024;

/// Capabilities before login (ARCHITECTURE.md, "IMAP"), without the TLS/plaintext dependent
/// parts and without `IMAP4rev2` (inserted after `IMAP4rev1` when `imap.imap4rev2` is on:
/// [`ImapSession::capabilities`]).
pub const CAPS_PREAUTH: &str = "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE";
/// Capabilities after login, as Dovecot announces them in the tagged `OK` of `LOGIN`
/// (`APPENDLIMIT=<max_message_bytes>` is appended: [`ImapSession::capabilities`]).
pub const CAPS_AUTH: &str = "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE UIDPLUS MOVE NAMESPACE \
     SPECIAL-USE UNSELECT CHILDREN BINARY COMPRESS=DEFLATE ESEARCH SEARCHRES WITHIN \
     LIST-EXTENDED LIST-STATUS STATUS=SIZE CONDSTORE QRESYNC SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES THREAD=REFS UTF8=ACCEPT QUOTA QUOTA=RES-STORAGE \
     QUOTA=RES-MESSAGE UNAUTHENTICATE";

/// Extensions a client turned on (RFC 5161 ENABLE, or a CONDSTORE-enabling command, RFC
/// 7162 §3.1): they change what later responses carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enabled {
    /// RFC 7162 §3.1: unsolicited FETCHes carry MODSEQ, SELECT says HIGHESTMODSEQ.
    pub condstore: bool,
    /// RFC 7162 §3.2: `VANISHED` instead of `EXPUNGE`, `SELECT (QRESYNC ...)`.
    pub qresync: bool,
    /// RFC 6855 UTF8=ACCEPT: mailbox names and quoted strings in UTF-8 both ways.
    pub utf8: bool,
    /// RFC 9051 IMAP4rev2 (§2.3.1, Appendix E): no `\Recent`/`RECENT`, SEARCH answered
    /// with ESEARCH, UTF-8 mailbox names, `* LIST` in SELECT, `\NonExistent`.
    pub rev2: bool,
}

impl Enabled {
    /// Mailbox names travel as UTF-8, not modified UTF-7 (RFC 6855 §3, RFC 9051 §5.1).
    pub fn utf8_names(self) -> bool {
        self.utf8 || self.rev2
    }
}

/// RFC 3501 §3 session states; each carries what that state needs.
pub enum State {
    NotAuthenticated,
    Authenticated,
    Selected(Selected),
    Logout,
}

/// The selected mailbox (RFC 3501 §6.3.1).
pub struct Selected {
    /// The shared handle every session on this mailbox uses.
    pub mailbox: Arc<dyn Mailbox>,
    /// This session's picture: sequence numbers are indexes into it (§2.3.1.2).
    pub view: View,
    /// `EXAMINE` (§6.3.2): no flag changes, no expunge, `\Seen` is not set by FETCH.
    pub read_only: bool,
    /// The mailbox's change counter, to skip syncs when nothing may have changed.
    pub changes: watch::Receiver<u64>,
    /// Keywords announced in `* FLAGS` so far (a new one is announced again, §7.2.6).
    pub keywords: Vec<String>,
    /// RFC 5182 `$`: the UIDs the last `SEARCH RETURN (SAVE)` found (empty after SELECT).
    pub saved: Vec<u32>,
    /// `selected NAME`, the state `mailserver who` shows (made once, at SELECT).
    pub label: String,
}

/// What the next client line (or literal) is.
#[derive(Debug)]
pub(super) enum Input {
    /// A command (or the rest of one after a literal).
    Command,
    /// An AUTHENTICATE response line (RFC 3501 §6.2.2) for the command with this tag.
    Sasl { tag: String },
    /// IDLE is running (RFC 2177): the next line should be `DONE`.
    Idle { tag: String },
    /// Skipping this many more octets of a refused non-synchronizing literal.
    Skip { remaining: u64 },
    /// Discarding the rest of a refused command (the line after a skipped literal).
    SkipLine,
    /// A large APPEND's message literal going to the store as it is read, then the rest of
    /// its command line (`cmd/append.rs`).
    Append(Box<AppendUpload>),
}

/// An APPEND whose message literal is streamed into the store (RFC 3501 §6.3.11): the
/// session reads it from the driver in pieces and hands each to the store's [`NewMessage`]
/// on the blocking pool, so at most a piece or two of it is ever in memory.
pub(crate) struct AppendUpload {
    pub(crate) tag: String,
    /// The command up to the message literal's announcement: decoded again, with a
    /// placeholder message and the rest of the line, once the message has arrived
    /// ([`decode::parse_streamed_append`]).
    pub(crate) head: Vec<u8>,
    /// The literal's announced size, and how much of it is still to come.
    pub(crate) total: u64,
    pub(crate) remaining: u64,
    /// The message held a NUL octet (which a `{n}` literal may not, RFC 3501 §4.3).
    pub(crate) nul: bool,
    /// The store's name of the destination and its handle.
    pub(crate) name: String,
    pub(crate) mailbox: Arc<dyn Mailbox>,
    /// The message being saved; `None` once saving failed (the rest is read and dropped).
    pub(crate) msg: Option<Box<dyn NewMessage>>,
    /// Why saving failed, answered once the literal and its line are read.
    pub(crate) failed: Option<Fail>,
}

impl std::fmt::Debug for AppendUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppendUpload")
            .field("tag", &self.tag)
            .field("total", &self.total)
            .field("remaining", &self.remaining)
            .field("mailbox", &self.name)
            .field("failed", &self.failed)
            .finish()
    }
}

impl Drop for AppendUpload {
    /// An unsaved message is discarded on the blocking pool (its file is removed there).
    fn drop(&mut self) {
        if let Some(msg) = self.msg.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn_blocking(move || drop(msg))),
                Err(_) => drop(msg),
            }
        }
    }
}

/// How a handler's command ended (the dispatcher writes the tagged line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fail {
    /// `NO` with this text (response code included).
    No(String),
    /// `BAD` with this text.
    Bad(String),
}

/// The text of every internal failure (RFC 5530 `SERVERBUG`, in Dovecot's words); what went
/// wrong is in the daemon log only.
pub(crate) const SERVERBUG: &str =
    "[SERVERBUG] Internal error occurred. Refer to server log for more information.";

impl Fail {
    /// `NO [SERVERBUG] ...`: something failed that the client can do nothing about.
    pub(crate) fn internal() -> Fail {
        Fail::No(SERVERBUG.into())
    }
}

/// A handler's result: `Ok(text)` for `<tag> OK <text>`.
pub type Res = Result<String, Fail>;

impl From<store::Error> for Fail {
    fn from(e: store::Error) -> Fail {
        Fail::No(store_error_text(&e).to_string())
    }
}

/// The one place store errors become client text (ARCHITECTURE.md, "Mail store"): a fixed
/// string per
/// kind; the details go to the daemon log only.
pub fn store_error_text(e: &store::Error) -> &'static str {
    use store::ErrorKind as K;
    match e.kind {
        K::NotFound => {
            tracing::debug!("store: {e}");
            "[NONEXISTENT] Mailbox doesn't exist."
        }
        K::Exists => "[ALREADYEXISTS] Mailbox already exists.",
        K::NoPermission => {
            tracing::warn!("store: {e}");
            "[NOPERM] Permission denied."
        }
        K::OverLimit => {
            // Worth the operator's attention: usually a full disk or quota.
            tracing::warn!("store: {e}");
            "[OVERQUOTA] Quota exceeded."
        }
        K::OverQuota => {
            tracing::info!("store: {e}");
            "[OVERQUOTA] Quota exceeded (mailbox for user is full)."
        }
        K::Limit => "[LIMIT] Too many keywords in this mailbox.",
        K::Temporary => {
            tracing::warn!("store: {e}");
            "[UNAVAILABLE] Temporary failure, try again later."
        }
        K::Internal => {
            tracing::error!("store: {e}");
            SERVERBUG
        }
    }
}

/// Which announcements a command may be followed by (RFC 3501 §7.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncMode {
    /// Nothing (not selected, or the command announced what it did itself).
    Skip,
    /// Everything, syncing only if the mailbox's counter moved.
    Full,
    /// Everything, syncing even if the counter did not move (NOOP, CHECK).
    Forced,
    /// No EXPUNGE (FETCH, STORE, SEARCH).
    NoExpunge,
}

/// A FETCH being answered in batches.
pub(crate) struct FetchJob {
    pub(crate) tag: String,
    /// `(seq, meta)` still to answer, in order.
    pub(crate) targets: VecDeque<(u32, MessageMeta)>,
    pub(crate) names: Arc<Vec<MessageDataItemName<'static>>>,
    /// UID FETCH (the UID item is always included, §6.4.8).
    pub(crate) uid: bool,
    /// UIDs whose `\Seen` this FETCH set (their responses carry FLAGS), sorted.
    pub(crate) seen_now: Arc<Vec<u32>>,
    /// Whether the items need the message bytes (else no file is read).
    pub(crate) needs_body: bool,
    /// Some messages had been expunged by another session.
    pub(crate) missing: bool,
    /// The FETCH stopped at a message whose items could not be given: the `NO` text.
    pub(crate) failed: Option<&'static str>,
    pub(crate) mailbox: Arc<dyn Mailbox>,
}

/// One IMAP connection's session.
pub struct ImapSession {
    /// The connection's peer, config snapshot, store and users (never the socket).
    pub(crate) env: SessionEnv,
    /// RFC 3501 §3 state with its data.
    pub(crate) state: State,
    /// The logged-in user's name and mail tree.
    pub(crate) user: Option<(String, Arc<dyn UserStore>)>,
    /// TLS is active (implicit, or after STARTTLS).
    pub(crate) tls: bool,
    /// Failed logins so far (for [`crate::auth::failure_delay`]).
    pub(crate) auth_failures: u32,
    /// CONDSTORE / QRESYNC turned on in this session.
    pub(crate) enabled: Enabled,
    /// A `VANISHED` was announced during the current command: its tagged OK carries the
    /// HIGHESTMODSEQ after it (RFC 7162 §3.2.10, as Dovecot).
    pub(crate) vanished_sent: bool,
    /// The FETCH being answered in batches ([`Step::Continue`]).
    pub(crate) fetch_job: Option<FetchJob>,
    /// What the next client line is (command, SASL response, IDLE's DONE, skipped data).
    pub(super) input: Input,
    /// The command being assembled: lines (with CRLF) and literals.
    pub(super) pending: Vec<u8>,
    /// Consecutive `BAD` replies.
    pub(super) bad: u32,
    /// The next line follows an AUTHENTICATE that was refused before its response: the
    /// client may send the response anyway, and it must not reach the protocol log.
    pub(super) redact_next: bool,
    /// Line, literal and command size limits (from `max_message_bytes`).
    pub(super) limits: decode::Limits,
    /// COMPRESS=DEFLATE is active (RFC 4978: once per connection).
    pub(crate) compressed: bool,
    /// What the command being run said beyond imap-codec's types (`SEARCH RETURN`,
    /// extended LIST); set before each handler runs.
    pub(crate) ext: decode::ext::Extensions,
    /// The login was proxied to the owner ([`Step::Relay`]): its connection, and the user
    /// (the protocol log's per-user rule).
    pub(crate) relay: Option<Box<crate::cluster::proxy::Backend>>,
    pub(crate) relay_user: Option<String>,
}

impl ImapSession {
    pub fn new(env: SessionEnv) -> ImapSession {
        let limits =
            decode::Limits::for_message_size(env.snapshot.config.limits.max_message_bytes);
        let tls = env.tls;
        ImapSession {
            env,
            state: State::NotAuthenticated,
            user: None,
            tls,
            auth_failures: 0,
            enabled: Enabled::default(),
            vanished_sent: false,
            fetch_job: None,
            input: Input::Command,
            pending: Vec::new(),
            bad: 0,
            redact_next: false,
            limits,
            compressed: false,
            ext: Default::default(),
            relay: None,
            relay_user: None,
        }
    }

    /// The next line is an AUTHENTICATE response for `tag` (RFC 3501 §6.2.2).
    pub(crate) fn expect_sasl(&mut self, tag: String) {
        self.input = Input::Sasl { tag };
    }

    /// IDLE runs until `DONE` (RFC 2177).
    pub(crate) fn expect_done(&mut self, tag: String) {
        self.input = Input::Idle { tag };
    }

    /// Plaintext logins are allowed (TLS, loopback peer, or `allow_plaintext`).
    pub(crate) fn plaintext_allowed(&self) -> bool {
        self.env.plaintext_allowed(self.tls)
    }

    /// The capability list for the current state (RFC 3501 §7.2.1).
    pub fn capabilities(&self) -> String {
        let caps = self.capabilities_rev1();
        if !self.env.snapshot.config.imap_protocol.imap4rev2 {
            return caps;
        }
        // RFC 9051 §7.2.2: both versions, a client opts in with `ENABLE IMAP4rev2`.
        caps.replacen("IMAP4rev1", "IMAP4rev1 IMAP4rev2", 1)
    }

    /// The capability list without `IMAP4rev2`.
    fn capabilities_rev1(&self) -> String {
        match self.state {
            State::NotAuthenticated | State::Logout => {
                let mut caps = String::from(CAPS_PREAUTH);
                if !self.tls {
                    caps.push_str(" STARTTLS");
                }
                if self.plaintext_allowed() {
                    caps.push_str(" AUTH=PLAIN");
                } else {
                    caps.push_str(" LOGINDISABLED");
                }
                caps
            }
            _ => format!("{CAPS_AUTH} APPENDLIMIT={}", self.append_limit()),
        }
    }

    /// RFC 7889 APPENDLIMIT: the largest message APPEND accepts, the same for every
    /// mailbox (the session's snapshot `limits.max_message_bytes`).
    pub(crate) fn append_limit(&self) -> u64 {
        self.env.snapshot.config.limits.max_message_bytes
    }

    /// Turns CONDSTORE on for a CONDSTORE-enabling command (RFC 7162 §3.1): on the
    /// selected mailbox the client is told its HIGHESTMODSEQ then (§3.1.2.1, as Dovecot).
    pub(crate) fn enable_condstore(&mut self, out: &mut Output) {
        if self.enabled.condstore {
            return;
        }
        self.enabled.condstore = true;
        if let State::Selected(sel) = &self.state {
            out.reply(format!(
                "* OK [HIGHESTMODSEQ {}] Highest",
                sel.view.highest_modseq.max(1)
            ));
        }
    }

    /// The selected mailbox, or a `BAD` (commands of §6.4 need one).
    pub(crate) fn selected(&mut self) -> Result<&mut Selected, Fail> {
        match &mut self.state {
            State::Selected(s) => Ok(s),
            _ => Err(Fail::Bad("No mailbox selected.".into())),
        }
    }

    /// The logged-in user's tree.
    pub(crate) fn user_store(&self) -> Result<Arc<dyn UserStore>, Fail> {
        self.user
            .as_ref()
            .map(|(_, u)| u.clone())
            .ok_or_else(|| Fail::Bad("Not logged in.".into()))
    }

    /// Announces pending changes (as `sync` allows) and writes the tagged completion.
    pub(crate) async fn complete(
        &mut self,
        tag: &str,
        res: Res,
        sync: SyncMode,
        out: &mut Output,
    ) -> Step {
        match res {
            Ok(text) => {
                self.bad = 0;
                if let Err(step) = self.announce(sync, out).await {
                    return step;
                }
                let text = match &self.state {
                    State::Selected(sel)
                        if std::mem::take(&mut self.vanished_sent) && !text.starts_with('[') =>
                    {
                        format!("[HIGHESTMODSEQ {}] {text}", sel.view.highest_modseq.max(1))
                    }
                    _ => text,
                };
                out.status(format!("{tag} OK {text}"));
                Step::ReadLine
            }
            Err(Fail::No(text)) => {
                self.bad = 0;
                if let Err(step) = self.announce(sync, out).await {
                    return step;
                }
                out.status(format!("{tag} NO {text}"));
                Step::ReadLine
            }
            Err(Fail::Bad(text)) => self.bad(tag, &text, out),
        }
    }

    /// A `BAD` reply (tagged, or `*`); the 10th in a row ends the session.
    pub(super) fn bad(&mut self, tag: &str, text: &str, out: &mut Output) -> Step {
        self.bad += 1;
        if tag == "*" {
            out.reply(format!("* BAD {text}"));
        } else {
            out.status(format!("{tag} BAD {text}"));
        }
        if self.bad >= MAX_BAD_COMMANDS {
            out.reply("* BYE Too many invalid commands.");
            self.state = State::Logout;
            return Step::Close;
        }
        Step::ReadLine
    }

    /// Syncs the selected view and writes the untagged responses for what changed. `Err`
    /// means the session must end (the view could not be kept consistent).
    pub(crate) async fn announce(&mut self, mode: SyncMode, out: &mut Output) -> Result<(), Step> {
        let State::Selected(sel) = &mut self.state else {
            return Ok(());
        };
        let forced = match mode {
            SyncMode::Skip => return Ok(()),
            SyncMode::Forced => true,
            SyncMode::Full | SyncMode::NoExpunge => false,
        };
        if !forced && !sel.changes.has_changed().unwrap_or(false) {
            return Ok(());
        }
        sel.changes.mark_unchanged();
        let allow_expunge = mode != SyncMode::NoExpunge;
        let view = std::mem::take(&mut sel.view);
        let mailbox = sel.mailbox.clone();
        let modseqs = self.enabled.qresync;
        let r = tokio::task::spawn_blocking(move || {
            sync_view(&*mailbox, view, allow_expunge, modseqs)
        })
        .await;
        match r {
            Ok((view, Ok(changes), held)) => {
                sel.view = view;
                if self.enabled.rev2 {
                    forget_recent(&mut sel.view);
                }
                if held {
                    // Expunges wait for a command that may announce them: that command
                    // must sync again, though nothing changes on disk until then.
                    sel.changes.mark_changed();
                }
                self.vanished_sent |= self.enabled.qresync && !changes.expunged_uids.is_empty();
                write_changes(sel, &changes, self.enabled, out);
                Ok(())
            }
            Ok((view, Err(e), _)) => {
                // The view is unchanged; nothing to announce this time.
                sel.view = view;
                let _ = store_error_text(&e);
                Ok(())
            }
            Err(e) => {
                tracing::error!("IMAP sync task failed: {e}");
                out.reply(format!("* BYE {SERVERBUG}"));
                self.state = State::Logout;
                Err(Step::Close)
            }
        }
    }
}

/// IMAP4rev2 has no `\Recent` (RFC 9051 Appendix E): a rev2 session's view never shows it.
/// (The store still gives it to the first view that syncs a message, so a rev1 session
/// opened later does not see it as recent, as between two rev1 sessions.)
pub(crate) fn forget_recent(view: &mut View) {
    for m in view.messages.iter_mut().filter(|m| m.recent) {
        m.recent = false;
    }
}

/// Brings `view` up to date. Without `allow_expunge`, messages others expunged stay in the
/// view (announced later); new messages and flag changes are taken (flag changes only
/// without `modseqs`, for QRESYNC clients: see below). The flag says that expunges were
/// held back.
pub(crate) fn sync_view(
    mailbox: &dyn Mailbox,
    mut view: View,
    allow_expunge: bool,
    modseqs: bool,
) -> (View, store::Result<Changes>, bool) {
    if allow_expunge {
        let r = mailbox.sync(&mut view);
        return (view, r, false);
    }
    let mut fresh = view.clone();
    let changes = match mailbox.sync(&mut fresh) {
        Ok(c) => c,
        Err(e) => return (view, Err(e), false),
    };
    if changes.expunged.is_empty() {
        return (fresh, Ok(changes), false);
    }
    if fresh.uid_validity != view.uid_validity {
        // UIDVALIDITY changed: nothing of the old view is valid; keep it until NOOP says so.
        return (view, Ok(Changes::default()), true);
    }
    let mut out = Changes::default();
    // A QRESYNC client (RFC 7162 §3.2) may take the highest MODSEQ it saw as what it knows
    // and resync from it later: none is shown past an expunge it has not been told of yet,
    // so flag changes wait with the expunges for the next command that may announce them.
    // (Dovecot sends them; a client that stored such a MODSEQ would never hear of the
    // expunge.)
    let hold = modseqs;
    for m in view.messages.iter_mut().filter(|_| !hold) {
        if let Ok(i) = fresh.messages.binary_search_by_key(&m.uid, |f| f.uid) {
            let f = &fresh.messages[i];
            if f.flags != m.flags || f.keywords != m.keywords || f.modseq != m.modseq {
                m.flags = f.flags;
                m.keywords = f.keywords.clone();
                m.modseq = f.modseq;
                out.flags_changed.push(m.uid);
            }
        }
    }
    let last = view.messages.last().map_or(0, |m| m.uid);
    let start = fresh.messages.partition_point(|m| m.uid <= last);
    for m in &fresh.messages[start..] {
        view.messages.push(m.clone());
        out.added += 1;
    }
    view.uid_next = fresh.uid_next;
    if !hold {
        view.highest_modseq = fresh.highest_modseq;
    }
    (view, Ok(out), true)
}

/// The untagged responses for `changes` (RFC 3501 §7.4.1 EXPUNGE, §7.3.1 EXISTS, §7.3.2
/// RECENT, §7.4.2 FETCH).
pub(crate) fn write_changes(
    sel: &mut Selected,
    changes: &Changes,
    enabled: Enabled,
    out: &mut Output,
) {
    if enabled.qresync {
        // RFC 7162 §3.2.10: one VANISHED for all of them, by UID.
        let mut uids = changes.expunged_uids.clone();
        uids.sort_unstable();
        if !uids.is_empty() {
            out.reply(format!("* VANISHED {}", super::encode::uid_set(&uids)));
        }
    } else {
        for seq in &changes.expunged {
            out.reply(format!("* {seq} EXPUNGE"));
        }
    }
    let added = sel
        .view
        .messages
        .len()
        .saturating_sub(changes.added as usize);
    let changed: Vec<MessageMeta> = changes
        .flags_changed
        .iter()
        .filter_map(|uid| sel.view.seq_of(*uid))
        .map(|seq| sel.view.messages[seq as usize - 1].clone())
        .chain(sel.view.messages[added..].iter().cloned())
        .collect();
    announce_new_keywords(sel, changed.iter(), out);
    let view = &sel.view;
    if changes.added > 0 {
        out.reply(format!("* {} EXISTS", view.messages.len()));
        // RFC 9051 Appendix E: IMAP4rev2 has no RECENT response (nor `\Recent`).
        if !enabled.rev2 {
            let recent = view.messages.iter().filter(|m| m.recent).count();
            out.reply(format!("* {recent} RECENT"));
        }
    }
    for uid in &changes.flags_changed {
        if let Some(seq) = view.seq_of(*uid) {
            let m = &view.messages[seq as usize - 1];
            let flags = flags_list(m.flags, &m.keywords, m.recent);
            // RFC 7162 §3.1.4.1 (MODSEQ) and §3.2.4 (UID, once QRESYNC is on).
            // Dovecot's order: UID, MODSEQ, FLAGS.
            out.reply(match (enabled.qresync, enabled.condstore) {
                (true, _) => format!(
                    "* {seq} FETCH (UID {} MODSEQ ({}) FLAGS {flags})",
                    m.uid, m.modseq
                ),
                (false, true) => format!("* {seq} FETCH (MODSEQ ({}) FLAGS {flags})", m.modseq),
                _ => format!("* {seq} FETCH (FLAGS {flags})"),
            });
        }
    }
}

/// Announces keywords of `metas` the session has not shown yet (as Dovecot does, before
/// the FETCH or EXISTS that carries them).
pub(crate) fn announce_new_keywords<'a>(
    sel: &mut Selected,
    metas: impl IntoIterator<Item = &'a MessageMeta>,
    out: &mut Output,
) {
    let mut new = false;
    for m in metas {
        for k in &m.keywords {
            if !sel.keywords.contains(k) {
                sel.keywords.push(k.clone());
                new = true;
            }
        }
    }
    if new {
        let room = sel.mailbox.keyword_room();
        write_flags(&sel.keywords, sel.read_only, room, out);
    }
}
