//! The IMAP4rev1 session (RFC 3501): one struct with a state enum (§3: Not Authenticated,
//! Authenticated, Selected, Logout); the command table ([`super::commands`]: name, states,
//! announcements, handler per row) and the handlers in [`super::cmd`] (one file per command
//! family).
//!
//! Owns: assembling a command from the driver's lines and literals (RFC 3501 §4.3 literals,
//! §7.5 the `+` continuation request, RFC 7888 LITERAL+), decoding it with imap-codec
//! ([`super::decode::parse_command`]), the state check against the command's row (§3, one
//! place), the tagged
//! completion, the "too many invalid commands" limit, the redaction of `LOGIN` passwords and
//! SASL payloads for the protocol log (SPEC §5), and announcing what other sessions did
//! (§5.2, §7.4.1: `EXPUNGE`, `EXISTS`, `RECENT`, `FETCH FLAGS`) at the points the RFC allows.
//!
//! The session never touches the socket (STYLE principle 6): it implements
//! [`crate::session::Session`]; the shared driver frames lines (`line_limit`), reads the literals
//! the session asks for ([`Step::ReadLiteral`]) and tees everything to the protocol log. The
//! literal announcement at the end of a line (`{n}` / `{n+}`) is therefore recognised here
//! rather than by [`super::decode::Framer`], which is written for a driver that owns the
//! buffer; the limits are the framer's ([`decode::Limits`]).
//!
//! Expunge announcements (§7.4.1): after `FETCH`, `STORE` and `SEARCH` (and their UID forms)
//! only `EXISTS` and flag changes are announced; expunges by others stay pending (the expunged
//! messages stay in this session's view, as "ghosts" that FETCH reports with
//! `[EXPUNGEISSUED]`) until a command that may announce them (`NOOP`, `CHECK`, `IDLE`, ...).
//! A keyword new to the mailbox is announced with `* FLAGS` / `[PERMANENTFLAGS]` (§7.2.6)
//! before the response that carries it, as Dovecot does. Syncs are skipped when the
//! mailbox's change counter has not moved (NOOP, CHECK and IDLE always sync).
//!
//! Limits (SPEC §8): 64 KiB per line, literals up to `max_message_bytes` (8 KiB before
//! login), `BAD` for syntax errors and `* BYE` after [`MAX_BAD_COMMANDS`] in a row. A large
//! FETCH is answered in batches through [`Step::Continue`].
//!
//! An over-long line is dropped by the driver before this session sees it; if it ended with
//! a non-synchronizing literal announcement, the driver reports its tail
//! ([`Session::on_line_discarded`]) and the literal's data is skipped, never read as commands.

use std::sync::Arc;

use bounded_static::IntoBoundedStatic;
use imap_codec::imap_types::command::Command;
use tokio::sync::watch;

use super::commands::{CommandSpec, Done};
use super::decode::{self, literal_at_end, FrameError};
use crate::session::{Output, Session, SessionEnv, Step};
use crate::store::{self, Changes, Mailbox, MessageMeta, UserStore, View};

/// Consecutive `BAD` replies after which the session says `* BYE` and closes (SPEC §8).
pub const MAX_BAD_COMMANDS: u32 = 10;

/// Largest literal accepted before login (a LOGIN or AUTHENTICATE argument): an
/// unauthenticated client cannot make the server buffer a message-sized literal.
pub const MAX_LITERAL_BEFORE_LOGIN: u64 = 8 * 1024;

/// Literal data is read from the driver in pieces of at most this size while a refused
/// non-synchronizing literal is skipped, so a huge refused literal is never buffered.
const SKIP_CHUNK: u64 = 64 * 1024;

/// Capabilities before login (SPEC §8), without the TLS/plaintext dependent parts.
pub const CAPS_PREAUTH: &str = "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE";
/// Capabilities after login, as Dovecot announces them in the tagged `OK` of `LOGIN`.
pub const CAPS_AUTH: &str =
    "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE UIDPLUS MOVE NAMESPACE SPECIAL-USE UNSELECT CHILDREN";

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
}

/// What the next client line is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Input {
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

/// The one place store errors become client text (STYLE principle 7): a fixed string per
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
        K::OverLimit => "[OVERQUOTA] Quota exceeded.",
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
    /// The FETCH being answered in batches ([`Step::Continue`]).
    pub(crate) fetch_job: Option<super::cmd::fetch::FetchJob>,
    /// What the next client line is (command, SASL response, IDLE's DONE, skipped data).
    input: Input,
    /// The command being assembled: lines (with CRLF) and literals.
    pending: Vec<u8>,
    /// Consecutive `BAD` replies.
    bad: u32,
    /// Line, literal and command size limits (from `max_message_bytes`).
    limits: decode::Limits,
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
            fetch_job: None,
            input: Input::Command,
            pending: Vec::new(),
            bad: 0,
            limits,
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
            _ => CAPS_AUTH.to_string(),
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

    /// One complete command (lines and literals, CRLF included).
    async fn execute(&mut self, bytes: Vec<u8>, out: &mut Output) -> Step {
        let cmd: Command<'static> = match decode::parse_command(&bytes) {
            Ok(c) => c.into_static(),
            Err(e) => {
                let tag = e.tag.unwrap_or_else(|| "*".into());
                return self.bad(&tag, e.text, out);
            }
        };
        let tag = cmd.tag.inner().to_string();
        let spec = CommandSpec::of(&cmd.body);
        if let Err(text) = spec.check_state(&self.state) {
            return self.bad(&tag, text, out);
        }
        match (spec.run)(self, &tag, cmd.body, out).await {
            Done::Res(res) => self.complete(&tag, res, spec.sync, out).await,
            Done::Step(step) => step,
        }
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
    fn bad(&mut self, tag: &str, text: &str, out: &mut Output) -> Step {
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
        let r =
            tokio::task::spawn_blocking(move || sync_view(&*mailbox, view, allow_expunge)).await;
        match r {
            Ok((view, Ok(changes))) => {
                sel.view = view;
                write_changes(sel, &changes, out);
                Ok(())
            }
            Ok((view, Err(e))) => {
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

    /// A complete line in command mode.
    async fn command_line(&mut self, line: &[u8], out: &mut Output) -> Step {
        self.pending.extend_from_slice(line);
        self.pending.extend_from_slice(b"\r\n");
        if self.pending.len() as u64 > self.limits.max_command {
            return self.refuse(FrameError::TooLong, literal_at_end(line), out);
        }
        match literal_at_end(line) {
            Some((len, sync)) => {
                let total = (self.pending.len() as u64).saturating_add(len);
                let max = match self.state {
                    State::NotAuthenticated => MAX_LITERAL_BEFORE_LOGIN,
                    _ => self.limits.max_literal,
                };
                if len > max || total > self.limits.max_command {
                    return self.refuse(FrameError::LiteralTooBig, Some((len, sync)), out);
                }
                if sync {
                    // RFC 3501 §7.5: the client waits for this before sending the data.
                    out.status("+ OK");
                }
                Step::ReadLiteral(len as usize)
            }
            None => {
                let bytes = std::mem::take(&mut self.pending);
                self.execute(bytes, out).await
            }
        }
    }

    /// Refuses the command being assembled; a non-synchronizing literal it announced is
    /// skipped (the client sends it anyway), a synchronizing one is never sent (no `+`).
    fn refuse(
        &mut self,
        error: FrameError,
        literal: Option<(u64, bool)>,
        out: &mut Output,
    ) -> Step {
        let tag = decode::tag_of(&self.pending)
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .unwrap_or_else(|| "*".into());
        self.pending.clear();
        let step = self.bad(&tag, error.reply_text(), out);
        if step == Step::Close {
            return step;
        }
        match literal {
            Some((len, false)) => self.skip(len),
            _ => Step::ReadLine,
        }
    }

    fn skip(&mut self, remaining: u64) -> Step {
        if remaining == 0 {
            self.input = Input::SkipLine;
            return Step::ReadLine;
        }
        self.input = Input::Skip { remaining };
        Step::ReadLiteral(remaining.min(SKIP_CHUNK) as usize)
    }

    /// The redacted form of a command line holding a password or SASL data (SPEC §5).
    fn redact_line(&self, line: &[u8]) -> Option<Vec<u8>> {
        match &self.input {
            Input::Sasl { .. } => return Some(b"***".to_vec()),
            Input::Command => {}
            _ => return None,
        }
        if !self.pending.is_empty() {
            // The rest of a command after a literal: a LOGIN's password may be in it.
            return is_command(&self.pending, b"LOGIN").then(|| b"***".to_vec());
        }
        redact_command(line)
    }
}

impl Session for ImapSession {
    fn line_limit(&self) -> usize {
        self.limits.max_line
    }

    fn greeting(&mut self, out: &mut Output) {
        out.reply(format!(
            "* OK [CAPABILITY {}] {} ready.",
            self.capabilities(),
            self.env.snapshot.config.server.hostname
        ));
    }

    fn redact(&self, line: &[u8]) -> Option<Vec<u8>> {
        self.redact_line(line)
    }

    async fn on_line(&mut self, line: &[u8], out: &mut Output) -> Step {
        match std::mem::replace(&mut self.input, Input::Command) {
            Input::Command => self.command_line(line, out).await,
            Input::Sasl { tag } => self.sasl_response(&tag, line, out).await,
            Input::Idle { tag } => self.idle_line(&tag, line, out).await,
            Input::SkipLine => match literal_at_end(line) {
                Some((len, false)) => self.skip(len),
                _ => Step::ReadLine,
            },
            Input::Skip { remaining } => {
                // Not reachable (the driver reads literals then); keep skipping.
                self.skip(remaining)
            }
        }
    }

    async fn on_literal(&mut self, data: Vec<u8>, out: &mut Output) -> Step {
        let _ = out;
        match self.input {
            Input::Skip { remaining } => self.skip(remaining.saturating_sub(data.len() as u64)),
            _ => {
                self.pending.extend_from_slice(&data);
                Step::ReadLine
            }
        }
    }

    fn on_too_long(&mut self, out: &mut Output) -> Step {
        let tag = match std::mem::replace(&mut self.input, Input::Command) {
            Input::Sasl { tag } | Input::Idle { tag } => tag,
            _ => decode::tag_of(&self.pending)
                .map(|t| String::from_utf8_lossy(t).into_owned())
                .unwrap_or_else(|| "*".into()),
        };
        self.pending.clear();
        self.bad(&tag, FrameError::TooLong.reply_text(), out)
    }

    async fn on_continue(&mut self, out: &mut Output) -> Step {
        self.fetch_more(out).await
    }

    /// An over-long line that announced a non-synchronizing literal: its data follows and
    /// must be skipped, not read as commands.
    fn on_line_discarded(&mut self, tail: &[u8]) -> Option<Step> {
        match literal_at_end(tail) {
            Some((len, false)) => Some(self.skip(len)),
            _ => None,
        }
    }

    fn on_tls(&mut self) {
        self.tls = true;
    }

    fn on_timeout(&mut self, out: &mut Output) {
        out.reply("* BYE Disconnected for inactivity.");
    }

    fn on_shutdown(&mut self, out: &mut Output) {
        out.reply("* BYE Server shutting down.");
    }

    /// The receiver marked seen at the last sync, so a change made between that sync (at
    /// IDLE start) and the driver's first wait still wakes the session.
    fn idle_watch(&self) -> Option<watch::Receiver<u64>> {
        match (&self.input, &self.state) {
            (Input::Idle { .. }, State::Selected(sel)) => Some(sel.changes.clone()),
            _ => None,
        }
    }

    /// Literals of `LOGIN` (user name or password) and `AUTHENTICATE` are never logged.
    fn literal_is_secret(&self) -> bool {
        matches!(self.input, Input::Command)
            && (is_command(&self.pending, b"LOGIN") || is_command(&self.pending, b"AUTHENTICATE"))
    }

    async fn on_wakeup(&mut self, out: &mut Output) -> Step {
        if !matches!(self.input, Input::Idle { .. }) {
            return Step::ReadLine;
        }
        match self.announce(SyncMode::Forced, out).await {
            Ok(()) => Step::Idle,
            Err(step) => step,
        }
    }
}

/// Brings `view` up to date. Without `allow_expunge`, messages others expunged stay in the
/// view (announced later); new messages and flag changes are taken.
pub(crate) fn sync_view(
    mailbox: &dyn Mailbox,
    mut view: View,
    allow_expunge: bool,
) -> (View, store::Result<Changes>) {
    if allow_expunge {
        let r = mailbox.sync(&mut view);
        return (view, r);
    }
    let mut fresh = view.clone();
    let changes = match mailbox.sync(&mut fresh) {
        Ok(c) => c,
        Err(e) => return (view, Err(e)),
    };
    if changes.expunged.is_empty() {
        return (fresh, Ok(changes));
    }
    if fresh.uid_validity != view.uid_validity {
        // UIDVALIDITY changed: nothing of the old view is valid; keep it until NOOP says so.
        return (view, Ok(Changes::default()));
    }
    let mut out = Changes::default();
    for m in view.messages.iter_mut() {
        if let Ok(i) = fresh.messages.binary_search_by_key(&m.uid, |f| f.uid) {
            let f = &fresh.messages[i];
            if f.flags != m.flags || f.keywords != m.keywords {
                m.flags = f.flags;
                m.keywords = f.keywords.clone();
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
    (view, Ok(out))
}

/// The untagged responses for `changes` (RFC 3501 §7.4.1 EXPUNGE, §7.3.1 EXISTS, §7.3.2
/// RECENT, §7.4.2 FETCH).
pub(crate) fn write_changes(sel: &mut Selected, changes: &Changes, out: &mut Output) {
    for seq in &changes.expunged {
        out.reply(format!("* {seq} EXPUNGE"));
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
    super::cmd::announce_new_keywords(sel, changed.iter(), out);
    let view = &sel.view;
    if changes.added > 0 {
        out.reply(format!("* {} EXISTS", view.messages.len()));
        let recent = view.messages.iter().filter(|m| m.recent).count();
        out.reply(format!("* {recent} RECENT"));
    }
    for uid in &changes.flags_changed {
        if let Some(seq) = view.seq_of(*uid) {
            let m = &view.messages[seq as usize - 1];
            out.reply(format!(
                "* {seq} FETCH (FLAGS {})",
                super::cmd::flags_list(m.flags, &m.keywords, m.recent)
            ));
        }
    }
}

/// Whether `buf` starts with `<tag> <name>` followed by a space or the end (case-insensitive).
fn is_command(buf: &[u8], name: &[u8]) -> bool {
    let Some(tag) = decode::tag_of(buf) else {
        return false;
    };
    let rest = &buf[tag.len() + 1..];
    rest.len() >= name.len()
        && rest[..name.len()].eq_ignore_ascii_case(name)
        && matches!(rest.get(name.len()), None | Some(b' ') | Some(b'\r'))
}

/// `a1 LOGIN alice secret` → `a1 LOGIN alice ***`; `a1 AUTHENTICATE PLAIN <ir>` →
/// `a1 AUTHENTICATE PLAIN ***`. `None` for lines without secrets.
pub(crate) fn redact_command(line: &[u8]) -> Option<Vec<u8>> {
    let tag = decode::tag_of(line)?;
    if is_command(line, b"AUTHENTICATE") {
        let start = tag.len() + 1 + "AUTHENTICATE".len();
        let rest = &line[start..];
        let words: Vec<&[u8]> = rest
            .split(|&b| b == b' ')
            .filter(|w| !w.is_empty())
            .collect();
        if words.len() < 2 {
            return None;
        }
        let mut r = line[..start].to_vec();
        r.push(b' ');
        r.extend_from_slice(words[0]);
        r.extend_from_slice(b" ***");
        return Some(r);
    }
    if !is_command(line, b"LOGIN") {
        return None;
    }
    let start = tag.len() + 1 + "LOGIN".len();
    let rest = &line[start..];
    let rest_trim = rest.strip_prefix(b" ").unwrap_or(rest);
    // The user name: a quoted string, a literal announcement (then no password here) or an atom.
    let user_len = match rest_trim.first() {
        None => return None,
        Some(b'"') => {
            let mut i = 1;
            let mut end = None;
            while i < rest_trim.len() {
                match rest_trim[i] {
                    b'\\' => i += 2,
                    b'"' => {
                        end = Some(i + 1);
                        break;
                    }
                    _ => i += 1,
                }
            }
            end.unwrap_or(rest_trim.len())
        }
        Some(b'{') => return None,
        Some(_) => rest_trim
            .iter()
            .position(|&b| b == b' ')
            .unwrap_or(rest_trim.len()),
    };
    let mut r = line[..start].to_vec();
    r.push(b' ');
    r.extend_from_slice(&rest_trim[..user_len]);
    r.extend_from_slice(b" ***");
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_and_authenticate_are_redacted() {
        let r = |l: &str| redact_command(l.as_bytes()).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(
            r("a1 LOGIN alice secret").as_deref(),
            Some("a1 LOGIN alice ***")
        );
        assert_eq!(
            r("a1 login \"al ice\" \"se cret\"").as_deref(),
            Some("a1 login \"al ice\" ***")
        );
        assert_eq!(r("a1 LOGIN {5}"), None);
        assert_eq!(
            r("a1 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==").as_deref(),
            Some("a1 AUTHENTICATE PLAIN ***")
        );
        assert_eq!(r("a1 AUTHENTICATE PLAIN"), None);
        assert_eq!(r("a1 LOGINX a b"), None);
        assert_eq!(r("a1 NOOP"), None);
    }
}
