//! The IMAP4rev1 session as the connection driver runs it (RFC 3501): the `Session` impl
//! for [`ImapSession`] (whose data, states and tagged completion are in [`super::state`]),
//! with the command table ([`super::commands`]: name, states, announcements, handler per
//! row) and the handlers in [`super::cmd`] (one file per command family) below it.
//!
//! Owns: assembling a command from the driver's lines and literals (RFC 3501 §4.3 literals,
//! §7.5 the `+` continuation request, RFC 7888 LITERAL+), decoding it with imap-codec
//! ([`super::decode::parse_command`]), the state check against the command's row (§3, one
//! place), the "too many invalid commands" limit, the redaction of `LOGIN` passwords and
//! SASL payloads for the protocol log (never written, at any level), and when to announce
//! what other sessions did (§5.2, §7.4.1) — in IDLE, on the mailbox's change counter.
//!
//! The session never touches the socket: it implements [`crate::session::Session`]; the
//! shared driver frames lines (`line_limit`), reads the literals the session asks for
//! ([`Step::ReadLiteral`]) and tees everything to the protocol log. The literal announcement
//! at the end of a line (`{n}` / `{n+}`) is recognised here ([`decode::literal_at_end`]),
//! under the limits of [`decode::Limits`].
//!
//! Expunge announcements (§7.4.1): after `FETCH`, `STORE` and `SEARCH` (not their UID forms,
//! which are other commands and may announce them, as in Dovecot) only `EXISTS` and flag
//! changes are announced; expunges by others stay pending (the expunged
//! messages stay in this session's view, as "ghosts" that FETCH reports with
//! `[EXPUNGEISSUED]`) until a command that may announce them (`NOOP`, `CHECK`, `IDLE`, ...).
//! A keyword new to the mailbox is announced with `* FLAGS` / `[PERMANENTFLAGS]` (§7.2.6)
//! before the response that carries it, as Dovecot does. Syncs are skipped when the
//! mailbox's change counter has not moved (NOOP, CHECK and IDLE always sync).
//!
//! Limits (ARCHITECTURE.md, "Limits"): 64 KiB per line, literals up to `max_message_bytes`, a
//! whole command up to that plus two lines — except an APPEND's message over
//! [`append::STREAM_MIN`], which is not assembled but streamed into the store a piece at a
//! time (`cmd/append.rs`; ARCHITECTURE.md, "The path of one large APPEND"); before login a whole command (lines and
//! literals) at most [`MAX_COMMAND_BEFORE_LOGIN`]; `BAD` for syntax errors and `* BYE` after [`MAX_BAD_COMMANDS`] in a row. A large
//! FETCH is answered in batches through [`Step::Continue`].
//!
//! An over-long line is dropped by the driver before this session sees it; if it ended with
//! a non-synchronizing literal announcement, the driver reports its tail
//! ([`Session::on_line_discarded`]) and the literal's data is skipped, never read as commands.

use imap_codec::imap_types::command::Command;
use tokio::sync::watch;

use super::cmd::append;
use super::commands::{CommandSpec, Done};
use super::decode::{self, literal_at_end, FrameError};
pub use super::state::ImapSession;
use super::state::{Input, State, SyncMode, MAX_COMMAND_BEFORE_LOGIN};
use crate::session::{KickReason, LiteralPiece, Output, Session, Step};

/// Literal data is read from the driver in pieces of at most this size while a refused
/// non-synchronizing literal is skipped, so a huge refused literal is never buffered.
const SKIP_CHUNK: u64 = 64 * 1024;

impl ImapSession {
    /// One complete command (lines and literals, CRLF included).
    async fn execute(&mut self, bytes: Vec<u8>, out: &mut Output) -> Step {
        if let Some(tag) = decode::unauthenticate_tag(&bytes) {
            // RFC 8437: not in imap-codec's grammar, so recognised before it.
            let tag = String::from_utf8_lossy(tag).into_owned();
            return self.unauthenticate(&tag, out);
        }
        let (mut cmd, ext): (Command<'static>, _) = match decode::parse_command_ext(&bytes) {
            Ok(c) => c,
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
        let sync = spec.sync_for(&cmd.body);
        self.ext = ext;
        if let Some(marker) = self.ext.saved_marker {
            // RFC 5182 `$`: the saved result, or nothing to do when it is empty.
            if let Some(done) = self.substitute_saved(&mut cmd.body, marker) {
                return self.complete(&tag, done, sync, out).await;
            }
        }
        match (spec.run)(self, &tag, cmd.body, out).await {
            Done::Res(res) => self.complete(&tag, res, sync, out).await,
            Done::Step(step) => step,
        }
    }

    /// The largest literal and the largest whole command in the current state: small before
    /// login, so an unauthenticated client cannot make the session buffer much.
    fn command_limits(&self) -> (u64, u64) {
        match self.state {
            State::NotAuthenticated => (MAX_COMMAND_BEFORE_LOGIN, MAX_COMMAND_BEFORE_LOGIN),
            _ => (self.limits.max_literal, self.limits.max_command),
        }
    }

    /// A complete line in command mode.
    async fn command_line(&mut self, line: &[u8], out: &mut Output) -> Step {
        let (max_literal, max_command) = self.command_limits();
        // Checked before the line is appended: a refused line is never buffered.
        if (self.pending.len() + line.len() + 2) as u64 > max_command {
            return self.refuse(FrameError::TooLong, literal_at_end(line), out);
        }
        self.pending.extend_from_slice(line);
        self.pending.extend_from_slice(b"\r\n");
        match literal_at_end(line) {
            Some((len, sync)) => {
                let total = (self.pending.len() as u64).saturating_add(len);
                if len > max_literal || total > max_command {
                    return self.refuse(FrameError::LiteralTooBig, Some((len, sync)), out);
                }
                if let Some((head, cmd)) = self.streamable_append(len) {
                    self.pending.clear();
                    return self.append_stream_begin(head, cmd, len, sync, out).await;
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

    /// Whether the command being assembled (its last line announcing a literal of `len`
    /// octets) is an APPEND to stream: a valid APPEND in this state whose message is that
    /// literal, over [`append::STREAM_MIN`] (ARCHITECTURE.md, "The path of one large
    /// APPEND"). Smaller messages are assembled with their command as any literal.
    fn streamable_append(&self, len: u64) -> Option<(Vec<u8>, Command<'static>)> {
        if len <= append::STREAM_MIN || matches!(self.state, State::NotAuthenticated) {
            return None;
        }
        let (head, cmd) = decode::append_head(&self.pending)?;
        CommandSpec::of(&cmd.body).check_state(&self.state).ok()?;
        Some((head, cmd))
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

    /// Skips `remaining` octets of literal data the client sends for a refused command,
    /// then the rest of its line.
    pub(super) fn skip(&mut self, remaining: u64) -> Step {
        if remaining == 0 {
            self.input = Input::SkipLine;
            return Step::ReadLine;
        }
        self.input = Input::Skip { remaining };
        Step::ReadLiteral(remaining.min(SKIP_CHUNK) as usize)
    }

    /// The redacted form of a command line holding a password or SASL data (never logged).
    fn redact_line(&self, line: &[u8]) -> Option<Vec<u8>> {
        if self.redact_next {
            // The SASL response to a refused AUTHENTICATE: clients send it anyway.
            return Some(b"***".to_vec());
        }
        match &self.input {
            Input::Sasl { .. } => return Some(b"***".to_vec()),
            Input::Command => {}
            _ => return None,
        }
        if !self.pending.is_empty() {
            // The rest of a command after a literal: a LOGIN's password (or SASL data) may be in it.
            let secret =
                is_command(&self.pending, b"LOGIN") || is_command(&self.pending, b"AUTHENTICATE");
            return secret.then(|| b"***".to_vec());
        }
        redact_command(line)
    }
}

impl Session for ImapSession {
    fn line_limit(&self) -> usize {
        match self.state {
            State::NotAuthenticated => self.limits.max_line.min(MAX_COMMAND_BEFORE_LOGIN as usize),
            _ => self.limits.max_line,
        }
    }

    fn logged_in(&self) -> bool {
        !matches!(self.state, State::NotAuthenticated)
    }

    fn log_user(&self) -> Option<&str> {
        self.user
            .as_ref()
            .map(|(name, _)| name.as_str())
            .or(self.relay_user.as_deref())
    }

    fn take_relay(&mut self) -> Option<Box<crate::cluster::proxy::Backend>> {
        self.relay.take()
    }

    fn set_session_id(&mut self, id: u64) {
        self.env.session_id = id;
    }

    fn state_name(&self) -> &'static str {
        match self.state {
            State::NotAuthenticated => "not_authenticated",
            State::Authenticated => "authenticated",
            State::Selected(_) => "selected",
            State::Logout => "logout",
        }
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
        self.redact_next = false;
        match std::mem::replace(&mut self.input, Input::Command) {
            Input::Command => {
                let awaits = self.pending.is_empty() && authenticate_awaits_response(line);
                let step = self.command_line(line, out).await;
                // Refused (no `+` asked for the response): the next line is still redacted.
                self.redact_next = awaits && !matches!(self.input, Input::Sasl { .. });
                step
            }
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
            Input::Append(up) if up.remaining > 0 => {
                // Not reachable either (the driver reads the literal first).
                let step = Step::ReadLiteral(up.remaining.min(append::STREAM_PIECE) as usize);
                self.input = Input::Append(up);
                step
            }
            Input::Append(up) => self.append_stream_end(up, line, out).await,
        }
    }

    async fn on_literal(&mut self, data: Vec<u8>, out: &mut Output) -> Step {
        let _ = out;
        match std::mem::replace(&mut self.input, Input::Command) {
            Input::Skip { remaining } => self.skip(remaining.saturating_sub(data.len() as u64)),
            Input::Append(up) => self.append_stream_piece(up, data).await,
            input => {
                self.input = input;
                self.pending.extend_from_slice(&data);
                Step::ReadLine
            }
        }
    }

    /// A streamed APPEND's literal is logged as one literal, whatever its pieces.
    fn literal_piece(&self) -> LiteralPiece {
        match &self.input {
            Input::Append(up) if up.remaining == up.total => LiteralPiece::First { total: up.total },
            Input::Append(_) => LiteralPiece::Rest,
            _ => LiteralPiece::Whole,
        }
    }

    fn on_too_long(&mut self, out: &mut Output) -> Step {
        let tag = match std::mem::replace(&mut self.input, Input::Command) {
            Input::Sasl { tag } | Input::Idle { tag } => tag,
            // The line after a streamed message: the message is discarded.
            Input::Append(mut up) => std::mem::take(&mut up.tag),
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

    fn on_kick(&mut self, reason: KickReason, out: &mut Output) {
        match reason {
            KickReason::Admin => out.reply("* BYE Disconnected by the administrator."),
            // RFC 5530 §3: the server cannot serve this now; the client reconnects and the
            // login goes to the user's new owner.
            KickReason::Moved => {
                out.reply("* BYE [UNAVAILABLE] This account moved to another node; reconnect.")
            }
        }
    }

    fn who(&self) -> (Option<&str>, &str) {
        let user = self.user.as_ref().map(|(u, _)| u.as_str());
        let state = match &self.state {
            State::NotAuthenticated => "not authenticated",
            State::Authenticated => "authenticated",
            State::Selected(sel) => sel.label.as_str(),
            State::Logout => "logout",
        };
        (user, state)
    }

    /// The receiver marked seen at the last sync, so a change made between that sync (at
    /// IDLE start) and the driver's first wait still wakes the session.
    fn idle_watch(&self) -> Option<watch::Receiver<u64>> {
        match (&self.input, &self.state) {
            (Input::Idle { .. }, State::Selected(sel)) => Some(sel.changes.clone()),
            _ => None,
        }
    }

    /// The session's snapshot `imap.idle_check_interval_secs`, while a mailbox is selected.
    fn idle_check(&self) -> Option<std::time::Duration> {
        match (&self.input, &self.state) {
            (Input::Idle { .. }, State::Selected(_)) => {
                self.env.snapshot.config.imap_protocol.idle_check_interval
            }
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

/// The words of a client line as byte ranges: runs of non-whitespace, any ASCII whitespace
/// (space, tab, ...) separating them, leading whitespace skipped. Redaction reads lines with
/// this, not with the command parser, so a malformed line is redacted as a good one is.
fn words(line: &[u8]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            return None;
        }
        let start = i;
        while i < line.len() && !line[i].is_ascii_whitespace() {
            i += 1;
        }
        Some(start..i)
    })
}

/// Where the command word `name` of `line` ends: the first word after the tag is `name`, or
/// (`UID LOGIN`, to be safe) the second after `UID`. Case-insensitive.
fn command_end(line: &[u8], name: &[u8]) -> Option<usize> {
    let w: Vec<_> = words(line).take(3).collect();
    let is = |i: usize, n: &[u8]| w.get(i).is_some_and(|r| line[r.clone()].eq_ignore_ascii_case(n));
    if is(1, name) {
        Some(w[1].end)
    } else if is(1, b"UID") && is(2, name) {
        Some(w[2].end)
    } else {
        None
    }
}

/// Whether `buf` (a line, or a command being assembled) is a `name` command as
/// [`command_end`] reads it.
fn is_command(buf: &[u8], name: &[u8]) -> bool {
    command_end(buf, name).is_some()
}

/// Whether `line` is an AUTHENTICATE without an initial response: a client sends its SASL
/// response on the next line, whether or not the server asked for it.
fn authenticate_awaits_response(line: &[u8]) -> bool {
    command_end(line, b"AUTHENTICATE").is_some_and(|end| words(&line[end..]).count() == 1)
}

/// `a1 LOGIN alice secret` → `a1 LOGIN alice ***`; `a1 AUTHENTICATE PLAIN <ir>` →
/// `a1 AUTHENTICATE PLAIN ***`. `None` for lines without secrets. Works on any line, well
/// formed or not: LOGIN is recognised as [`command_end`] says; past it the user name (an
/// atom, or a quoted string) is kept and the rest is `***`; a user name that cannot be
/// delimited (an unterminated quote, anything but a lone literal announcement after `{`)
/// is redacted with the rest.
pub fn redact_command(line: &[u8]) -> Option<Vec<u8>> {
    let keep_then_stars = |keep: usize| {
        let mut r = line[..keep].to_vec();
        r.extend_from_slice(b" ***");
        Some(r)
    };
    if let Some(end) = command_end(line, b"AUTHENTICATE") {
        let mut args = words(&line[end..]);
        let mechanism = args.next()?;
        args.next()?;
        return keep_then_stars(end + mechanism.end);
    }
    let end = command_end(line, b"LOGIN")?;
    let rest = &line[end..];
    let start = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    let user = &rest[start..];
    // The user name: a quoted string, a literal announcement (then no password here) or an atom.
    let user_len = match user[0] {
        b'"' => {
            let mut i = 1;
            let mut closed = None;
            while i < user.len() {
                match user[i] {
                    b'\\' => i += 2,
                    b'"' => {
                        closed = Some(i + 1);
                        break;
                    }
                    _ => i += 1,
                }
            }
            match closed {
                Some(n) => n,
                None => return keep_then_stars(end),
            }
        }
        b'{' if literal_at_end(user).is_some()
            && !user[1..].contains(&b'{')
            && words(user).count() == 1 =>
        {
            return None
        }
        b'{' => return keep_then_stars(end),
        _ => user
            .iter()
            .position(u8::is_ascii_whitespace)
            .unwrap_or(user.len()),
    };
    keep_then_stars(end + start + user_len)
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
        assert_eq!(r("a1 SELECT LOGIN"), None);
        assert_eq!(r("a1 LOGIN"), None);
        assert_eq!(
            r("a1 LOGIN alice {6}").as_deref(),
            Some("a1 LOGIN alice ***")
        );
    }

    #[test]
    fn malformed_login_lines_are_redacted() {
        let r = |l: &[u8]| redact_command(l).map(|v| String::from_utf8(v).unwrap());
        for (line, want) in [
            (&b"a5  LOGIN alice Pw"[..], "a5  LOGIN alice ***"),
            (b"a7 LOGIN\talice\tPw", "a7 LOGIN\talice ***"),
            (b" a8 LOGIN alice Pw", " a8 LOGIN alice ***"),
            (b"b5 LOGIN \"alice Pw", "b5 LOGIN ***"),
            (b"b6 UID LOGIN alice Pw", "b6 UID LOGIN alice ***"),
            (b"b7 uid\tlogin\t\"a\\\" b\"\tPw", "b7 uid\tlogin\t\"a\\\" b\" ***"),
            (b"b8 LoGiN {5} Pw", "b8 LoGiN ***"),
            (b"b9 LOGIN {x}{5}", "b9 LOGIN ***"),
            (b"c1 AUTHENTICATE\tPLAIN\tQUJD", "c1 AUTHENTICATE\tPLAIN ***"),
            (b"c2  authenticate plain  QUJD", "c2  authenticate plain ***"),
        ] {
            let got = r(line);
            assert_eq!(got.as_deref(), Some(want), "{:?}", String::from_utf8_lossy(line));
            assert!(!got.unwrap().contains("Pw") && !want.contains("QUJD"));
        }
    }

    #[test]
    fn authenticate_without_initial_response_is_recognised() {
        assert!(authenticate_awaits_response(b"a AUTHENTICATE PLAIN"));
        assert!(authenticate_awaits_response(b" a\tauthenticate  FOO "));
        assert!(!authenticate_awaits_response(b"a AUTHENTICATE PLAIN QUJD"));
        assert!(!authenticate_awaits_response(b"a AUTHENTICATE"));
        assert!(!authenticate_awaits_response(b"a LOGIN PLAIN"));
    }
}
